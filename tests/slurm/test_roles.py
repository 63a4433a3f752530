"""Layout arithmetic, role selection and the rollout fleet's protocol, without a cluster.

The fleet tests run real servers (oreal.launch.rollout_service) in threads with small fake
engines, over real sockets and a real gloo weight group.
"""

import os
import threading
import time

import pytest
import torch

from oreal.config.load import load_config
from oreal.engines.protocols import Completion, RolloutGroup, SamplingSettings, prompt_seed
from oreal.errors import RolloutEngineError
from oreal.launch.fleet import RolloutFleet
from oreal.launch.layout import engine_slots, engines_per_node, split_prompts
from oreal.launch.rendezvous import Rendezvous
from oreal.launch.roles import role_of_this_task
from oreal.launch.rollout_service import RolloutServer

# ---- layout arithmetic -------------------------------------------------------------------------


@pytest.mark.parametrize("tp, per_node", [(1, 8), (2, 4), (4, 2)])
def test_four_nodes_of_eight_gpus_give_disjoint_engines(tp, per_node):
    slots = engine_slots(rollout_nodes=1, gpus_per_node=8, tensor_parallel_size=tp)
    assert len(slots) == per_node == engines_per_node(8, tp)
    assert all(len(s.devices) == tp and s.device_kind == "cuda" for s in slots)
    used = [d for s in slots for d in s.devices]
    assert sorted(used) == list(range(8))  # disjoint, and every GPU used
    # two rollout nodes: indices continue on the second node, devices restart there
    two = engine_slots(rollout_nodes=2, gpus_per_node=8, tensor_parallel_size=tp)
    assert [s.index for s in two] == list(range(2 * per_node)) and two[per_node].node == 1 and two[per_node].devices == slots[0].devices


def test_engines_that_do_not_fit_a_node_are_refused_with_the_field():
    with pytest.raises(ValueError, match="rollout.tensor_parallel_size=16 is more than cluster.gpus_per_node=8"):
        engines_per_node(8, 16)
    with pytest.raises(ValueError, match="rollout.engines_per_node=3 engines x rollout.tensor_parallel_size=4 GPUs"):
        engines_per_node(8, 4, 3)
    with pytest.raises(ValueError, match="rollout.engines_per_node=3"):
        load_config(["model=qwen2.5_7b", "cluster.gpus_per_node=8", "rollout.tensor_parallel_size=4", "rollout.engines_per_node=3"])


def test_cpu_nodes_split_their_cores_between_engines():
    slots = engine_slots(rollout_nodes=1, gpus_per_node=0, tensor_parallel_size=1, configured=2, cpus=[0, 1, 2])
    assert [s.devices for s in slots] == [(0,), (1, 2)] and {s.device_kind for s in slots} == {"cpu"}
    # more engines than cores: they share, round-robin
    assert [s.devices for s in engine_slots(1, 0, 1, configured=2, cpus=[0])] == [(0,), (0,)]


def test_prompts_split_into_contiguous_ranges_in_order():
    assert split_prompts(5, 2) == [range(0, 2), range(2, 5)]
    assert split_prompts(1, 3) == [range(0, 0), range(0, 0), range(0, 1)]
    assert [i for r in split_prompts(64, 8) for i in r] == list(range(64))


# ---- roles -------------------------------------------------------------------------------------
def slurm_env(monkeypatch, node, localid, tasks_per_node=4, nodes=2, forced=None):
    for key in ("OREAL_ROLE", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
                "SLURM_STEP_NODELIST", "SLURM_TASKS_PER_NODE"):
        monkeypatch.setenv(key, "")  # set then delete, so monkeypatch restores them
        monkeypatch.delenv(key)
    env = {"SLURM_JOB_NUM_NODES": str(nodes), "SLURM_NODEID": str(node), "SLURM_PROCID": str(node * tasks_per_node + localid),
           "SLURM_NTASKS": str(nodes * tasks_per_node), "SLURM_NTASKS_PER_NODE": str(tasks_per_node),
           "SLURM_LOCALID": str(localid), "SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "n[1-2]"}
    if forced:
        env["OREAL_ROLE"] = forced
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr("oreal.launch.roles._hostnames", lambda nodelist: ["n1", "n2"] if "[" in nodelist else [nodelist])


def test_several_tasks_per_node_serve_engines_idle_or_train(monkeypatch):
    cfg = load_config(["cluster=local_slurm", "cluster.tasks_per_node=4", "rollout.engines_per_node=2"])
    roles = []
    for node, local in [(0, 0), (0, 1), (0, 2), (0, 3)]:
        slurm_env(monkeypatch, node, local)
        roles.append(role_of_this_task(cfg))
    assert [r.name for r in roles] == ["rollout", "rollout", "idle", "idle"]
    assert [r.engine.index for r in roles[:2]] == [0, 1]
    assert set(roles[0].engine.devices).isdisjoint(roles[1].engine.devices)
    for local in range(4):
        slurm_env(monkeypatch, 1, local)
        assert role_of_this_task(cfg).name == "trainer"
        # the trainer world excludes the rollout node's four tasks; its master is the first training node
        assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"], os.environ["MASTER_ADDR"]) == \
            (str(local), "4", str(local), "n2")


def test_heterogeneous_components_name_their_role(monkeypatch):
    cfg = load_config(["cluster=local_slurm", "rollout.engines_per_node=2"])
    slurm_env(monkeypatch, 0, 1, tasks_per_node=2, nodes=1, forced="rollout")
    assert role_of_this_task(cfg).engine.index == 1
    slurm_env(monkeypatch, 0, 1, tasks_per_node=2, nodes=1, forced="trainer")
    monkeypatch.setenv("SLURM_STEP_NODELIST", "n2")
    assert role_of_this_task(cfg).name == "trainer" and (os.environ["RANK"], os.environ["WORLD_SIZE"]) == ("1", "2")


def test_outside_a_multi_node_job_one_process_does_everything(monkeypatch):
    monkeypatch.delenv("SLURM_NODEID", raising=False)
    monkeypatch.delenv("OREAL_ROLE", raising=False)
    assert role_of_this_task(load_config(["cluster=local_slurm"])).name == "all"
    assert role_of_this_task(load_config([])).name == "all"


def test_allocation_that_does_not_match_the_config_is_refused(monkeypatch):
    slurm_env(monkeypatch, 0, 0, nodes=3)
    with pytest.raises(RuntimeError, match="the allocation has 3 nodes but cluster.nodes=2"):
        role_of_this_task(load_config(["cluster=local_slurm"]))


# ---- the fleet ---------------------------------------------------------------------------------
class SeedEngine:
    """Answers each prompt with [its seed, its first token] (what a seeded sampler depends on),
    and keeps the weights it receives."""

    def __init__(self, delay_s=0.0):
        self.weights, self.delay_s, self.calls = {}, delay_s, 0

    def generate(self, prompts, n, sampling):
        self.calls += 1
        time.sleep(self.delay_s)
        return [RolloutGroup(p, [Completion([prompt_seed(sampling.seed, sampling.prompt_offset + i), p[0]], "", [-0.5, -0.5], "stop")] * n)
                for i, p in enumerate(prompts)]

    def update_weights(self, buckets):
        for bucket in buckets:
            self.weights.update({k: v.clone() for k, v in bucket})

    def close(self):
        pass


def rollout_cfg(**overrides):
    cfg = load_config(["rollout.connect_timeout_s=20", "rollout.request_timeout_s=5", "rollout.sync_timeout_s=20",
                       "rollout.heartbeat_s=0.2", *[f"rollout.{k}={v}" for k, v in overrides.items()]])
    return cfg.rollout


@pytest.fixture
def job(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")


def start_servers(run_dir, engines, cfg):
    slots = engine_slots(1, 0, 1, configured=len(engines), cpus=list(range(len(engines))))
    errors = {}

    def serve(engine, slot):
        try:
            RolloutServer(engine, run_dir, slot, cfg).serve()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors[slot.index] = exc

    threads = [threading.Thread(target=serve, args=(e, s), daemon=True) for e, s in zip(engines, slots)]
    for t in threads:
        t.start()
    return threads, errors


PROMPTS = [[10 + i] for i in range(7)]


@pytest.mark.parametrize("transport", ["collective", "socket"])
def test_two_engines_answer_like_one_and_both_receive_the_weights(tmp_path, job, transport):
    cfg = rollout_cfg(weight_transport=transport)
    engines = [SeedEngine(), SeedEngine()]
    threads, errors = start_servers(tmp_path / "two", engines, cfg)
    fleet = RolloutFleet.connect(tmp_path / "two", 2, cfg)
    sampling = SamplingSettings(seed=123, max_new_tokens=4)
    groups = fleet.generate(PROMPTS, 3, sampling)
    assert [g.engine for g in groups] == [0, 0, 0, 1, 1, 1, 1] and all(e.calls == 1 for e in engines)
    weights = [[("a", torch.arange(6.0).view(2, 3)), ("b", torch.ones(3, dtype=torch.bfloat16))], [("c", torch.tensor([7]))]]
    fleet.update_weights(iter(weights))
    for e in engines:
        assert set(e.weights) == {"a", "b", "c"} and all(torch.equal(e.weights[k], v) for b in weights for k, v in b)
        assert e.weights["b"].dtype == torch.bfloat16
    fleet.close()
    for t in threads:
        t.join(10)
    assert not errors and not any(t.is_alive() for t in threads)
    # one engine: the same samples for every prompt (each prompt's seed is its index in the step)
    one_threads, _ = start_servers(tmp_path / "one", [SeedEngine()], cfg)
    single = RolloutFleet.connect(tmp_path / "one", 1, cfg)
    assert [g.completions for g in single.generate(PROMPTS, 3, sampling)] == [g.completions for g in groups]
    single.close()
    entry = Rendezvous(tmp_path / "two").dir / "engine-0.json"
    assert entry.stat().st_mode & 0o077 == 0  # the auth key is readable by the owner only


class DyingEngine(SeedEngine):
    def generate(self, prompts, n, sampling):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_an_engine_that_fails_or_hangs_is_named_within_the_timeout(tmp_path, job):
    cfg = rollout_cfg()
    threads, errors = start_servers(tmp_path, [SeedEngine(), DyingEngine()], cfg)
    fleet = RolloutFleet.connect(tmp_path, 2, cfg)
    with pytest.raises(RolloutEngineError, match=r"rollout engine 1 on \S+ \(engine 1 .*last heartbeat \d+ s ago\) "
                                                 r"failed during 'generate': RuntimeError: CUDA error"):
        fleet.generate(PROMPTS, 2, SamplingSettings(seed=1))
    threads[1].join(10)
    assert isinstance(errors[1], RuntimeError)  # the server ends with the engine's error
    fleet.close()

    hung_dir = tmp_path / "hung"
    start_servers(hung_dir, [SeedEngine(), SeedEngine(delay_s=60)], cfg)
    fleet = RolloutFleet.connect(hung_dir, 2, cfg)
    start = time.monotonic()
    with pytest.raises(RolloutEngineError, match="rollout engine 1 .* did not answer 'generate' within 5 s"):
        fleet.generate(PROMPTS, 2, SamplingSettings(seed=1))
    assert time.monotonic() - start < 10


def test_missing_engines_and_missing_trainers_end_within_their_timeouts(tmp_path, job):
    cfg = rollout_cfg(connect_timeout_s=1)
    with pytest.raises(RolloutEngineError, match=r"rollout engine\(s\) \[1\] of 2 did not announce themselves"):
        start_servers(tmp_path, [SeedEngine()], cfg)
        RolloutFleet.connect(tmp_path, 2, cfg)
    # a server nobody connects to gives up instead of waiting for the job's time limit
    threads, errors = start_servers(tmp_path / "alone", [SeedEngine()], cfg)
    threads[0].join(10)
    assert "no trainer connected within 1 s" in str(errors[0])


def test_an_earlier_incarnation_of_the_job_is_never_joined(tmp_path, job, monkeypatch):
    cfg = rollout_cfg(connect_timeout_s=1)
    start_servers(tmp_path, [SeedEngine()], cfg)  # restart 0 announces itself...
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    with pytest.raises(RolloutEngineError, match="did not announce"):  # ...restart 1 does not see it
        RolloutFleet.connect(tmp_path, 1, cfg)


def test_run_folders_are_named_from_the_overrides_and_stay_short():
    from oreal.config.store import run_folder_name

    assert run_folder_name("algo=grpo,seed=1") == "algo=grpo,seed=1"
    assert run_folder_name("") == "default"
    assert run_folder_name("model.path=/a/b") == "model.path=_a_b"
    long_a, long_b = "x=1," + "y" * 300, "x=1," + "y" * 299 + "z"
    assert len(run_folder_name(long_a)) == 120 and run_folder_name(long_a).startswith("x=1,yyy")
    assert run_folder_name(long_a) != run_folder_name(long_b)  # the hash keeps distinct points apart
    assert load_config(["cluster=local_slurm", "algo=grpo", "seed=1"]).run_dir == "runs/default_cpu/sweep/algo=grpo,seed=1"
