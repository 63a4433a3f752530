import json

from oreal.engines.tiny import QWEN2_PRETOKENIZE, RECIPE_FILE, ensure_tiny, is_current, num_parameters


def test_pretokenizer_matches_transformers_qwen2():
    from transformers.models.qwen2 import tokenization_qwen2

    assert QWEN2_PRETOKENIZE == tokenization_qwen2.PRETOKENIZE_REGEX


def test_files_are_hugging_face_format(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"} <= names
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["architectures"] == ["Qwen2ForCausalLM"]
    assert 0.8e6 < num_parameters(tiny_model_dir) < 1.2e6


def test_tokenizer_round_trips_and_splits_digits(tokenizer):
    text = "Mia has 12 apples. 3/4 + 1/2 = 5/4. The answer is \\boxed{5/4}."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    pieces = [tokenizer.decode([i]) for i in tokenizer(" 1234", add_special_tokens=False)["input_ids"]]
    assert pieces == [" ", "1", "2", "3", "4"]
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"


def test_chat_template_is_chatml(tokenizer):
    text = tokenizer.apply_chat_template([{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
                                         tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"


def test_transformers_loads_the_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "Qwen2ForCausalLM" and model.config.num_hidden_layers == 4


def test_ensure_builds_once_and_rebuilds_on_recipe_change(tmp_path, tiny_config):
    import dataclasses

    model = dataclasses.replace(tiny_config.model, path=str(tmp_path / "m"))
    out = ensure_tiny(model, tiny_config.data.cpu_task)
    stamp = (out / RECIPE_FILE).stat().st_mtime_ns
    ensure_tiny(model, tiny_config.data.cpu_task)
    assert (out / RECIPE_FILE).stat().st_mtime_ns == stamp
    bigger = dataclasses.replace(model, num_layers=2)
    assert not is_current(out, bigger, tiny_config.data.cpu_task, 0)
    ensure_tiny(bigger, tiny_config.data.cpu_task)
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 2
