import pytest
import torch

from oreal.engines.hf_rollout import HFRolloutEngine
from oreal.engines.protocols import SamplingSettings


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return HFRolloutEngine(str(tiny_model_dir))


def model_logprobs(model, prompt, response):
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    return [logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(response)]


def test_greedy_is_the_argmax_chain(engine, chat_prompts):
    prompt = chat_prompts[0]
    got = engine.generate([prompt], 1, SamplingSettings(temperature=0, max_new_tokens=12))[0].completions[0]
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(12):
            nxt = int(engine.model(torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(nxt)
            if nxt in engine.eos_ids:
                break
    assert got.token_ids == ids[len(prompt):]
    assert got.finish_reason == ("stop" if ids[-1] in engine.eos_ids else "length")


def test_logprobs_are_the_raw_model_logprobs_of_sampled_tokens(engine, chat_prompts):
    group = engine.generate(chat_prompts[:2], 2, SamplingSettings(temperature=1.3, top_p=0.8, max_new_tokens=10, seed=1))
    for g in group:
        for c in g.completions:
            torch.testing.assert_close(torch.tensor(c.logprobs), torch.tensor(model_logprobs(engine.model, g.prompt_token_ids, c.token_ids)),
                                       atol=1e-5, rtol=0)


def test_seed_makes_sampling_reproducible(engine, chat_prompts):
    s = SamplingSettings(temperature=1.0, max_new_tokens=8, seed=5)
    a = engine.generate(chat_prompts[:3], 4, s)
    b = engine.generate(chat_prompts[:3], 4, s)
    c = engine.generate(chat_prompts[:3], 4, SamplingSettings(temperature=1.0, max_new_tokens=8, seed=6))
    ids = lambda groups: [x.token_ids for g in groups for x in g.completions]  # noqa: E731
    assert ids(a) == ids(b) != ids(c)
    assert len(a) == 3 and all(len(g.completions) == 4 for g in a)


def test_length_and_stop_strings(engine, tokenizer, chat_prompts):
    out = engine.generate(chat_prompts[:1], 1, SamplingSettings(temperature=0, max_new_tokens=3))[0].completions[0]
    assert len(out.token_ids) <= 3
    if len(out.token_ids) == 3 and out.token_ids[-1] not in engine.eos_ids:
        assert out.finish_reason == "length"
    full = engine.generate(chat_prompts[:1], 1, SamplingSettings(temperature=0, max_new_tokens=30))[0].completions[0]
    stop = full.text[3:5]
    if stop.strip():
        cut = engine.generate(chat_prompts[:1], 1, SamplingSettings(temperature=0, max_new_tokens=30, stop=(stop,)))[0].completions[0]
        assert cut.finish_reason == "stop" and stop not in cut.text and full.text.startswith(cut.text)


def test_update_weights_changes_generation(tiny_model_dir, chat_prompts):
    engine = HFRolloutEngine(str(tiny_model_dir))
    before = engine.generate(chat_prompts[:4], 1, SamplingSettings(temperature=0, max_new_tokens=8))
    new = {k: v + 0.5 * torch.randn_like(v) for k, v in engine.model.state_dict().items()}
    engine.update_weights(iter([list(new.items())]))
    for k, v in engine.model.state_dict().items():
        assert torch.equal(v, new[k])
    after = engine.generate(chat_prompts[:4], 1, SamplingSettings(temperature=0, max_new_tokens=8))
    assert [g.completions[0].token_ids for g in before] != [g.completions[0].token_ids for g in after]
