import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from oreal.engines.distributed import DistEnv
from tests.engines.policy_helpers import counts_of, make_engine, oreal_loss_fn, params, rl_batch


@pytest.mark.parametrize("row_tokens", [1024, 20])
def test_packed_scores_equal_one_sequence_at_a_time(tiny_model_dir, row_tokens):
    """One packed row, or many short rows with padding (row_tokens=20 < most sequences x 2)."""
    engine = make_engine(tiny_model_dir, micro_batch_size=5, pack_row_tokens=row_tokens)
    batch = rl_batch(7)
    scored = engine.score(batch, with_entropy=True)
    for tokens, n_prompt, lp, ent in zip(batch.token_ids, batch.num_prompt_tokens, scored.logprobs, scored.entropy):
        with torch.no_grad():
            logp = torch.log_softmax(engine.policy(torch.tensor([tokens])).logits[0].float(), -1)
        want = torch.stack([logp[t - 1, tokens[t]] for t in range(n_prompt, len(tokens))])
        torch.testing.assert_close(lp, want, atol=1e-5, rtol=0)
        want_ent = -(logp.exp() * logp).sum(-1)[n_prompt - 1 : len(tokens) - 1]
        torch.testing.assert_close(ent, want_ent, atol=1e-4, rtol=0)


def test_step_is_independent_of_micro_batch_size(tiny_model_dir):
    """In float64, so that only the order of floating-point sums differs between layouts."""
    batch = rl_batch(8)
    results = []
    for mbs in (1, 3, 8):
        engine = make_engine(tiny_model_dir, micro_batch_size=mbs, dtype="float64")
        stats = engine.train_step(batch, oreal_loss_fn(), counts_of(batch))
        results.append((params(engine), stats.metrics))
    for p, m in results[1:]:
        for k in p:
            torch.testing.assert_close(p[k], results[0][0][k], atol=1e-10, rtol=1e-9)
        for k in ("loss/positive", "loss/negative", "loss/token_rm"):
            assert abs(m[k] - results[0][1][k]) < 1e-10


def test_frozen_policy_trains_only_the_token_rm(tiny_model_dir):
    engine = make_engine(tiny_model_dir)
    before = params(engine)
    stats = engine.train_step(rl_batch(), oreal_loss_fn(), counts_of(rl_batch()), update_policy=False)
    after = params(engine)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("policy."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("rm."))
    assert stats.metrics["optim/policy_lr"] == 0.0 and stats.metrics["optim/token_rm_lr"] > 0


@pytest.mark.parametrize("delay", [0, 2])
def test_policy_schedule_runs_through_the_freeze_or_starts_at_the_first_update(tiny_model_dir, tmp_path, delay):
    """Two frozen steps then updates to the end (warm-up 1, 6 steps): through the freeze (delay 0,
    the reference) the updates run at the schedule's steps 2-5 of 6; delayed, at its steps 0-3 of
    4. A checkpoint taken during the freeze resumes the same schedule. The
    token RM's schedule is never delayed."""
    from oreal.config.schema import OptimConfig
    from oreal.engines.optim import lr_factor

    optim = OptimConfig(lr=1e-3, min_lr=1e-4, warmup_steps=1)
    make = lambda: make_engine(tiny_model_dir, policy_optim=optim, token_rm_optim=optim, total_steps=6,  # noqa: E731
                               policy_schedule_delay=delay)
    batch = rl_batch()
    engine = make()
    engine.train_step(batch, oreal_loss_fn(), counts_of(batch), update_policy=False)
    torch.save(engine.state_dict(), tmp_path / "frozen.pt")
    engine = make()  # resumed after the first frozen step
    engine.load_state_dict(torch.load(tmp_path / "frozen.pt"))
    metrics = [engine.train_step(batch, oreal_loss_fn(), counts_of(batch), update_policy=step >= 2).metrics
               for step in range(1, 6)]
    assert metrics[0]["optim/policy_lr"] == 0.0
    policy_steps = range(2, 6) if delay == 0 else range(0, 4)
    want = [lr_factor(s, optim, 6 - delay) * 1e-3 for s in policy_steps]
    assert [m["optim/policy_lr"] for m in metrics[1:]] == pytest.approx(want, rel=1e-12)
    # by hand: cosine from 1e-3 to 1e-4 after 1 warm-up step, factor 0.1 + 0.45 (1 + cos(pi p))
    if delay:  # over 4 steps: the first update at the peak, the last at p = 2/3
        assert want[0] == pytest.approx(1e-3) and want[-1] == pytest.approx(0.325e-3)
    else:  # over 6: the first update already at p = 1/5, the last at p = 4/5
        assert want[0] == pytest.approx(0.9140576e-3) and want[-1] == pytest.approx(0.1859424e-3)
    assert [m["optim/token_rm_lr"] for m in metrics] == pytest.approx([lr_factor(s, optim, 6) * 1e-3 for s in range(1, 6)])


def test_old_logprobs_are_the_pre_update_policy_logprobs(tiny_model_dir):
    engine = make_engine(tiny_model_dir)
    batch = rl_batch()
    before = engine.score(batch).logprobs
    stats = engine.train_step(batch, oreal_loss_fn(), counts_of(batch))
    for a, b in zip(stats.old_logprobs, before):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert not torch.allclose(torch.cat(engine.score(batch).logprobs), torch.cat(before))


def test_state_round_trip_continues_identically(tiny_model_dir, tmp_path):
    batch = rl_batch()
    a = make_engine(tiny_model_dir)
    a.train_step(batch, oreal_loss_fn(), counts_of(batch))
    torch.save(a.state_dict(), tmp_path / "state.pt")
    b = make_engine(tiny_model_dir)
    b.load_state_dict(torch.load(tmp_path / "state.pt"))
    for e in (a, b):
        e.train_step(rl_batch(seed=1), oreal_loss_fn(), counts_of(rl_batch(seed=1)))
    pa, pb = params(a), params(b)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_export_weights_in_buckets(tiny_model_dir):
    engine = make_engine(tiny_model_dir, use_token_rm=False)
    state = engine.policy.state_dict()
    bucket_list = list(engine.export_weights(256 << 10))
    assert len(bucket_list) > 1
    for bucket in bucket_list:
        size = sum(t.numel() * t.element_size() for _, t in bucket)
        assert size <= 256 << 10 or len(bucket) == 1
    exported = dict(kv for bucket in bucket_list for kv in bucket)
    assert exported.keys() == state.keys() and all(torch.equal(exported[k], state[k]) for k in state)


def _dp_worker(rank, world, port, model_dir, out_file):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from oreal.engines.distributed import init_distributed

    env = init_distributed()
    engine = make_engine(model_dir, dist_env=env, micro_batch_size=2, dtype="float64")
    for step in range(3):
        batch = rl_batch(8, seed=step)
        engine.train_step(batch, oreal_loss_fn(), counts_of(batch))
    if rank == 0:
        torch.save(params(engine), out_file)
    torch.distributed.destroy_process_group()


def test_two_process_data_parallel_equals_one_process(tiny_model_dir, tmp_path):
    """Two gloo ranks, each with half of every step's sequences, end 3 AdamW steps with the
    weights of one process that saw whole steps (float64: only summation order differs)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "dp.pt"
    mp.start_processes(_dp_worker, args=(2, port, str(tiny_model_dir), str(out)), nprocs=2, start_method="spawn", join=True)
    dp = torch.load(out)
    single = make_engine(tiny_model_dir, dist_env=DistEnv(), micro_batch_size=2, dtype="float64")
    start = params(single)
    for step in range(3):
        batch = rl_batch(8, seed=step)
        single.train_step(batch, oreal_loss_fn(), counts_of(batch))
    want = params(single)
    assert any(not torch.equal(start[k], want[k]) for k in want)
    for k in want:
        torch.testing.assert_close(dp[k], want[k], atol=1e-10, rtol=1e-9)


def test_resume_with_a_longer_run_follows_the_new_schedule(tiny_model_dir, tmp_path):
    """A run extended on resume (a larger trainer.num_steps) uses the new length's learning rate
    from its first resumed step, as a run started with that length would."""
    from oreal.engines.optim import lr_factor
    from tests.engines.policy_helpers import OPTIM

    batch = rl_batch()
    short = make_engine(tiny_model_dir, total_steps=2)
    for _ in range(2):
        short.train_step(batch, oreal_loss_fn(), counts_of(batch))
    torch.save(short.state_dict(), tmp_path / "state.pt")
    extended = make_engine(tiny_model_dir, total_steps=6)
    extended.load_state_dict(torch.load(tmp_path / "state.pt"))
    want = OPTIM.lr * lr_factor(2, OPTIM, 6)
    assert want != pytest.approx(short.policy_opt.param_groups[0]["lr"])  # the short run's schedule is spent
    for opt in (extended.policy_opt, extended.rm_opt):
        assert opt.param_groups[0]["lr"] == pytest.approx(want, rel=1e-12)
