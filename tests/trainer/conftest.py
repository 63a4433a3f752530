"""Settings for few-second RL runs on the warm-started tiny model (`warm_model_dir`, in
tests/conftest.py)."""


def fast_overrides(model_dir, run_dir, steps=4, extra=()):
    """A few-second RL run: HF rollouts, 6 prompts x 4 samples, tiny eval sets."""
    return [
        "rollout=hf", "trainer.sft.enabled=false", f"model.path={model_dir}", "model.build_locally=false",
        "data.cpu_task.levels=[1]", "trainer.num_prompts_per_step=6", "trainer.num_samples_per_prompt=4",
        "rollout.max_new_tokens=40", f"trainer.num_steps={steps}", "algo.actor_freeze_steps=1", "trainer.eval_every=2",
        "data.eval.cpu_heldout.source.limit=6", "data.eval.cpu_heldout.num_samples=2", "data.eval.math500_100.num_problems=3",
        "trainer.checkpoint_every=1", "logging.progress_bars=false", "reward.num_workers=1", "engine.micro_batch_size_per_rank=8",
        "trainer.policy_optim.lr=3e-4", "trainer.policy_optim.warmup_steps=1", "trainer.token_rm_optim.warmup_steps=1",
        f"run_dir={run_dir}", *extra,
    ]
