"""Role selection and the remote rollout protocol, without a cluster."""

import threading

import pytest
import torch

from oreal.config.load import load_config
from oreal.engines.protocols import Completion, RolloutGroup, SamplingSettings
from oreal.launch.remote_rollout import RENDEZVOUS, RemoteRolloutEngine, serve
from oreal.launch.roles import role_of_this_task


@pytest.fixture
def two_node_cfg():
    return load_config(["cluster.nodes=4", "cluster.rollout_nodes=1", "cluster.gpus_per_node=8"])


def slurm_env(monkeypatch, node, procid, ntasks=4, nodes=4):
    # set then delete, so monkeypatch restores them (role selection writes RANK, WORLD_SIZE, ...)
    for key in ("OREAL_ROLE", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK", "SLURM_STEP_NODELIST"):
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    env = {"SLURM_JOB_NUM_NODES": str(nodes), "SLURM_NODEID": str(node), "SLURM_PROCID": str(procid),
           "SLURM_NTASKS": str(ntasks), "SLURM_NTASKS_PER_NODE": "1", "SLURM_LOCALID": "0", "SLURM_JOB_ID": "42",
           "SLURM_JOB_NODELIST": "gpu[01-04]"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr("oreal.launch.roles._hostnames", lambda nodelist: ["gpu01", "gpu02", "gpu03", "gpu04"])


def test_first_nodes_roll_out_and_the_others_form_their_own_world(monkeypatch, two_node_cfg):
    slurm_env(monkeypatch, node=0, procid=0)
    assert role_of_this_task(two_node_cfg).name == "rollout"
    slurm_env(monkeypatch, node=2, procid=2)
    role = role_of_this_task(two_node_cfg)
    assert (role.name, role.remote_rollout) == ("trainer", True)
    import os

    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["MASTER_ADDR"]) == ("1", "3", "gpu02")


def test_outside_a_multi_node_job_one_process_does_everything(monkeypatch, two_node_cfg):
    monkeypatch.delenv("SLURM_NODEID", raising=False)
    monkeypatch.delenv("OREAL_ROLE", raising=False)
    assert role_of_this_task(two_node_cfg).name == "all"
    assert role_of_this_task(load_config([])).name == "all"


def test_allocation_that_does_not_match_the_config_is_refused(monkeypatch, two_node_cfg):
    slurm_env(monkeypatch, node=0, procid=0, nodes=2)
    with pytest.raises(RuntimeError, match="the allocation has 2 nodes but cluster.nodes=4"):
        role_of_this_task(two_node_cfg)


class EchoEngine:
    """Returns each prompt reversed, and remembers the weights it was sent."""

    def __init__(self):
        self.weights = {}

    def generate(self, prompts, n, sampling):
        return [RolloutGroup(p, [Completion(p[::-1], "", [-0.5] * len(p), "stop")] * n) for p in prompts]

    def update_weights(self, buckets):
        for bucket in buckets:
            self.weights.update(bucket)

    def close(self):
        pass


def test_remote_engine_generates_and_streams_weights_through_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    # a stale server of an earlier incarnation of the job must be ignored
    (tmp_path / RENDEZVOUS).parent.mkdir(parents=True)
    (tmp_path / RENDEZVOUS).write_text('{"host": "127.0.0.1", "port": 1, "authkey": "00", "job_id": "7", "restart": "-1"}')
    engine = EchoEngine()
    server = threading.Thread(target=serve, args=(engine, tmp_path, "127.0.0.1"), daemon=True)
    server.start()
    client = RemoteRolloutEngine(tmp_path, timeout_s=30)
    groups = client.generate([[1, 2, 3], [4]], 2, SamplingSettings(max_new_tokens=3))
    assert [g.completions[1].token_ids for g in groups] == [[3, 2, 1], [4]]
    weights = {"a": torch.arange(6.0).view(2, 3), "b": torch.ones(2)}
    client.update_weights(iter([[("a", weights["a"])], [("b", weights["b"])]]))
    assert set(engine.weights) == {"a", "b"} and torch.equal(engine.weights["a"], weights["a"])
    assert (tmp_path / RENDEZVOUS).stat().st_mode & 0o077 == 0  # the auth key is readable by the owner only
    client.close()
    server.join(timeout=10)
    assert not server.is_alive()


def test_run_folders_are_named_from_the_overrides_and_stay_short():
    from oreal.config.store import run_folder_name

    assert run_folder_name("algo=grpo,seed=1") == "algo=grpo,seed=1"
    assert run_folder_name("") == "default"
    assert run_folder_name("model.path=/a/b") == "model.path=_a_b"
    long_a, long_b = "x=1," + "y" * 300, "x=1," + "y" * 299 + "z"
    assert len(run_folder_name(long_a)) == 120 and run_folder_name(long_a).startswith("x=1,yyy")
    assert run_folder_name(long_a) != run_folder_name(long_b)  # the hash keeps distinct points apart
    assert load_config(["cluster=local_slurm", "algo=grpo", "seed=1"]).run_dir == "runs/default_cpu/sweep/algo=grpo,seed=1"
