import json

import pytest

from oreal.engines.protocols import SamplingSettings
from oreal.engines.replay import ReplayRolloutEngine


def test_replay_returns_recorded_responses(tmp_path, tokenizer):
    path = tmp_path / "replay.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"problem": "What is 1+1?", "responses": [r"\boxed{2}", r"\boxed{3}"]},
        {"problem": "What is 11+1?", "response": r"\boxed{12}", "finish_reasons": ["length"]},
    ]))
    engine = ReplayRolloutEngine(str(path), tokenizer)
    prompts = [tokenizer(tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                       add_generation_prompt=True))["input_ids"] for q in ("What is 11+1?", "What is 1+1?")]
    groups = engine.generate(prompts, 3, SamplingSettings())
    assert [c.text for c in groups[0].completions] == [r"\boxed{12}"] * 3
    assert [c.finish_reason for c in groups[0].completions] == ["length"] * 3
    assert [c.text for c in groups[1].completions] == [r"\boxed{2}", r"\boxed{3}", r"\boxed{2}"]
    assert tokenizer.decode(groups[1].completions[0].token_ids) == r"\boxed{2}"


def test_bad_rows_name_the_line(tmp_path, tokenizer):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"problem": "x", "responses": ["a"]}) + "\n" + json.dumps({"problem": "y"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: a replay row needs 'problem' and 'responses'"):
        ReplayRolloutEngine(str(path), tokenizer)
