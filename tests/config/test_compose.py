"""Every shipped config composes and validates; bad values fail in one line naming the field."""

import subprocess
import sys
from pathlib import Path

import pytest

from oreal.algo import LOSS_VARIANTS
from oreal.config import CONF_DIR, Config, ConfigError, load_config

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "evalset")


def options(group):
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


ALL = [(g, o) for g in GROUPS for o in options(g)]
# values that only exist at run time and have no sensible default
PASSRATE_SAMPLE = Path(__file__).with_name("passrate_sample.jsonl")  # `oreal passrate` output, 4 rows
REQUIRED = {
    ("rollout", "replay"): ["rollout.replay_path=responses.jsonl"],
    # its pass-rate file is made by a command when the study runs (the config names it)
    ("experiment", "ablation_ladder_paper_regime"): [f"data.train.cpu_task.path={PASSRATE_SAMPLE}"],
}


def test_groups_cover_every_independent_choice():
    assert {"model", "data", "algo", "rollout", "reward", "engine", "logging", "cluster", "experiment"} <= set(GROUPS)
    assert {"tiny", "qwen2.5_7b", "qwen2.5_32b"} <= set(options("model"))
    assert set(LOSS_VARIANTS) <= set(options("algo"))


@pytest.mark.parametrize("group,option", ALL, ids=[f"{g}={o}" for g, o in ALL])
def test_every_option_composes_and_validates(group, option):
    cfg = load_config([f"{group}={option}", *REQUIRED.get((group, option), [])])
    assert isinstance(cfg, Config)
    if group == "algo":
        # the variant's own dataclass, selected through the YAML's defaults list
        assert type(cfg.algo) is LOSS_VARIANTS[cfg.algo.name].config_cls
    if group == "experiment":
        assert cfg.name == option


@pytest.mark.parametrize("experiment", options("experiment"))
@pytest.mark.parametrize("algo", sorted(LOSS_VARIANTS))
def test_every_experiment_runs_every_loss_variant(experiment, algo):
    cfg = load_config([f"experiment={experiment}", f"algo={algo}", *REQUIRED.get(("experiment", experiment), [])])
    assert cfg.algo.name == algo


def test_published_layouts():
    seven = load_config(["experiment=oreal_7b"])
    assert (seven.model.num_layers, seven.model.hidden_size, seven.engine.tensor_parallel_size) == (28, 3584, 4)
    big = load_config(["experiment=oreal_32b"])
    assert (big.model.num_layers, big.model.hidden_size, big.engine.tensor_parallel_size) == (64, 5120, 8)
    assert big.trainer.policy_optim.lr == 5e-7 and big.trainer.token_rm_optim.min_lr == 4e-7  # inherited from oreal_7b


def test_oreal_defaults_are_the_paper_values():
    a = load_config(["algo=oreal"]).algo
    assert (a.advantage_estimator, a.filter, a.kl_coef, a.kl_estimator) == ("rloo", "pair", 0.01, "k3")
    assert (a.positive_loss_factor, a.negative_loss_factor, a.pos_mult_adv, a.actor_freeze_steps) == (1.0, 0.5, True, 10)
    b = load_config(["algo=oreal_no_token_rm"]).algo
    assert (b.filter, b.actor_freeze_steps, b.uses_token_rm) == ("none", 0, False)


BAD = [
    (["experiment=oreal_7b", "engine.tensor_parallel_size=3"], r"^engine\.tensor_parallel_size=3 must divide model\.num_attention_heads=28"),
    (["experiment=oreal_32b", "engine.tensor_parallel_size=10"], r"^engine\.tensor_parallel_size=10 must divide model\.num_kv_heads=8"),
    (["engine.pipeline_parallel_size=3"], r"^engine\.pipeline_parallel_size=3 must divide model\.num_layers=4"),
    (["engine.tensor_parallel_size=2"], r"torch engine is data parallel only; use engine=megatron"),
    (["algo.kl_coef=abc"], r"^algo\.kl_coef: Value 'abc'"),
    (["algo.bogus=1"], r"^algo\.bogus: Key 'bogus' not in 'OrealConfig'"),
    (["+trainer.bogus=1"], r"^trainer\.bogus: not a field of TrainerConfig"),
    (["algo=grpo", "algo.rescale=topk"], r"^algo\.rescale: Key 'rescale' not in 'GRPOConfig'"),
    (["algo.name=grpo"], r"^algo\.name='grpo' does not match the algo schema OrealConfig; select the variant with algo=grpo"),
    (["algo.kl_estimator=k4"], r"^algo\.kl_estimator='k4' is not supported"),
    (["algo.actor_freeze_steps=500"], r"^algo\.actor_freeze_steps=500 must be in \[0, trainer\.num_steps"),
    (["algo=grpo", "algo.actor_freeze_steps=2"], r"^algo\.actor_freeze_steps=2 only makes sense with a token RM"),
    (["algo=grpo", "trainer.num_samples_per_prompt=1"], r"^trainer\.num_samples_per_prompt=1"),
    (["rollout.top_p=0"], r"^rollout\.top_p=0\.0 must be in \(0, 1\]"),
    (["rollout.max_new_tokens=600"], r"^rollout\.max_new_tokens=600 must be below rollout\.max_model_len=512"),
    (["rollout.engine=sglang"], r"^rollout\.engine='sglang' is not supported"),
    (["rollout=replay"], r"^rollout\.replay_path is required"),
    (["trainer.policy_optim.min_lr=1"], r"^trainer\.policy_optim\.min_lr=1\.0 must be in"),
    (["cluster.rollout_nodes=1"], r"^cluster\.rollout_nodes=1 must be in \[0, cluster\.nodes=1\)"),
    (["logging.wandb_mode=loud"], r"^logging\.wandb_mode='loud'"),
    (["algo.filter=best"], r"^algo\.filter='best' is not supported; choose one of: none, drop_uniform, pair"),
    (["algo.rescale=softmax"], r"^algo\.rescale='softmax' is not supported; choose one of: threshold, uniform, topk"),
    (["algo=grpo_token_rm", "algo.rescale=softmax"], r"^algo\.rescale='softmax' is not supported"),
    (["algo=oreal_no_token_rm", "algo.actor_freeze_steps=10"], r"^algo\.actor_freeze_steps=10 only makes sense with a token RM"),
    (["algo=grpo_token_rm", "algo.actor_freeze_steps=240"], r"^algo\.actor_freeze_steps=240 must be in \[0, trainer\.num_steps=240\)"),
    (["trainer.token_rm_optim.betas=[0.9,1.0]"], r"^trainer\.token_rm_optim\.betas=\[0\.9, 1\.0\] must be two numbers in \[0, 1\)"),
    (["trainer.policy_optim.betas=[0.9]"], r"^trainer\.policy_optim\.betas"),
    (["data.difficulty_balance=true"], r"^data\.train\.cpu_task\.fields\.pass_rate is not set, but data\.difficulty_balance=true"),
    (["data.train.cpu_task.levels=[]"], r"^data\.train\.cpu_task\.levels is empty"),
    (["data=math_train", "data.train.math_train.fields.level=null", "data.train.math_train.levels=[5]"],
     r"^data\.train\.math_train\.levels=\['5'\] needs data\.train\.math_train\.fields\.level"),
    (["experiment=ablation_ladder_paper_regime"],
     r"^data\.train\.cpu_task\.path=runs/ablation_ladder_paper_regime/passrates_warm\.jsonl does not exist; "
     r"make it with: bash experiments/ablation_ladder/passrates\.sh$"),
    (["model=nope"], r"Could not find 'model/nope'"),
]


@pytest.mark.parametrize("overrides,pattern", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_values_fail_in_one_line_naming_the_field(overrides, pattern, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative data paths (the pass-rate file) must not exist, whatever runs/ holds here
    with pytest.raises(ConfigError, match=pattern) as info:
        load_config(overrides)
    assert "\n" not in str(info.value)


def test_socket_weights_are_refused_for_tensor_parallel_vllm_engines_only():
    """The socket path streams the weights into vLLM's ``collective_rpc`` as a generator, which
    the multiprocess executor of an engine with TP > 1 cannot pickle: refused with the fix."""
    with pytest.raises(ConfigError) as info:
        load_config(["cluster=slurm", "experiment=oreal_32b", "rollout.weight_transport=socket"])
    assert str(info.value) == ("rollout.weight_transport=socket does not work with rollout.tensor_parallel_size=4 "
                               "(vLLM's multiprocess executor cannot pickle the streamed weights); "
                               "use rollout.weight_transport=collective")
    # the neighbours stay valid: socket at TP 1, and TP > 1 with the collective (the default)
    socket_tp1 = load_config(["cluster=slurm", "experiment=oreal_7b", "rollout.weight_transport=socket"]).rollout
    assert (socket_tp1.weight_transport, socket_tp1.tensor_parallel_size) == ("socket", 1)
    assert load_config(["cluster=slurm", "experiment=oreal_32b"]).rollout.weight_transport == "collective"


def test_entry_point_reports_bad_config_in_one_line():
    proc = subprocess.run([sys.executable, "-m", "oreal.train", "engine.tensor_parallel_size=3", "hydra.run.dir=/tmp/oreal-test-bad"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        # 4 divides the heads but not the 2 KV heads: only sizes that divide both are offered
        "oreal: invalid config: engine.tensor_parallel_size=3 must divide model.num_attention_heads=4 of model=tiny; "
        "choose one of: 1, 2 (sizes that divide model.num_attention_heads, model.num_kv_heads)"
    ]


def test_config_command_prints_the_resolved_config():
    from oreal.cli import main

    assert main(["config", "--no-checks", "experiment=oreal_7b", "algo=grpo"]) == 0
    assert main(["config", "algo.kl_coef=abc"]) == 2
    # the checks a run makes first: the default data is there; the 7B prompts are on the hub (no network here)
    assert main(["config"]) == 0
    assert main(["config", "experiment=oreal_7b"]) == 1


FACTOR_ROWS = {  # row: (variant, filter, actor_freeze_steps, rescale or None)
    "2_grpo": ("grpo", "none", 0, None),
    "2a_pair_filter": ("grpo", "pair", 0, None),
    "2b_freeze": ("grpo_token_rm", "none", 10, "uniform"),
    "2c_token_weights": ("grpo_token_rm", "none", 0, "threshold"),
    "2d_all_three": ("grpo_token_rm", "pair", 10, "threshold"),
    "3_bc_positives": ("oreal_no_token_rm", "none", 0, None),
    "3a_pair_filter": ("oreal_no_token_rm", "pair", 0, None),
    "3b_freeze": ("oreal", "none", 10, "uniform"),
    "3c_token_weights": ("oreal", "none", 0, "threshold"),
    "4_token_rm": ("oreal", "pair", 10, "threshold"),
    "4u_uniform_weights": ("oreal", "pair", 10, "uniform"),
    "4f_no_freeze": ("oreal", "pair", 0, "threshold"),
}


@pytest.mark.parametrize("row", sorted(FACTOR_ROWS))
def test_factor_rows_change_one_thing_at_a_time(row):
    """Each factor row is its base row (2 or 3) plus exactly the factors its name says."""
    a = load_config(["experiment=ablation_ladder", f"ladder={row}"]).algo
    assert (a.name, a.filter, a.actor_freeze_steps, getattr(a, "rescale", None)) == FACTOR_ROWS[row]
    base = load_config(["experiment=ablation_ladder", "ladder=" + ("2_grpo" if row.startswith("2") else "3_bc_positives")]).algo
    assert (a.advantage_estimator, a.kl_coef, a.kl_estimator) == (base.advantage_estimator, base.kl_coef, base.kl_estimator)
    assert a.sample_weighting == base.sample_weighting  # the same loss factors as the base row


def test_reference_optimiser_row():
    cfg = load_config(["experiment=ablation_ladder", "ladder=4o_reference_optim"])
    t = cfg.trainer
    assert list(t.policy_optim.betas) == list(t.token_rm_optim.betas) == [0.9, 0.999]
    assert t.token_rm_optim.warmup_steps == 10 and t.policy_optim.warmup_steps == 3
    row4 = load_config(["experiment=ablation_ladder", "ladder=4_token_rm"])
    assert cfg.algo == row4.algo and list(row4.trainer.policy_optim.betas) == [0.9, 0.95]


def test_schedule_after_freeze_row_is_row_4_with_a_delayed_policy_schedule():
    from dataclasses import replace

    from oreal.engines.factory import policy_schedule_delay

    cfg = load_config(["experiment=ablation_ladder", "ladder=4w_schedule_after_freeze"])
    row4 = load_config(["experiment=ablation_ladder", "ladder=4_token_rm"])
    assert cfg.algo.schedule_after_freeze and not row4.algo.schedule_after_freeze
    assert replace(cfg.algo, schedule_after_freeze=False) == row4.algo and cfg.trainer == row4.trainer
    assert (policy_schedule_delay(cfg), policy_schedule_delay(row4)) == (10, 0)
    with pytest.raises(ValueError, match=r"algo\.schedule_after_freeze=true only changes a run with algo\.actor_freeze_steps > 0"):
        load_config(["experiment=ablation_ladder", "ladder=4_token_rm", "algo.actor_freeze_steps=0",
                     "algo.schedule_after_freeze=true"])


def test_paper_regime_keeps_the_ladders_warm_start_and_budget():
    paper = load_config(["experiment=ablation_ladder_paper_regime", f"data.train.cpu_task.path={PASSRATE_SAMPLE}"])
    ladder = load_config(["experiment=ablation_ladder"])
    assert paper.data.cpu_task == ladder.data.cpu_task and paper.trainer.sft == ladder.trainer.sft  # the SFT cache key
    assert paper.trainer.num_steps == ladder.trainer.num_steps == 48
    assert paper.data.difficulty_balance and paper.data.eval.keys() == ladder.data.eval.keys()
    assert [(b.low, b.high, b.repeat) for b in paper.data.pass_rate_bands] == [(0.0, 0.2, 6), (0.2, 0.4, 4), (0.4, 0.6, 4), (0.6, 0.8, 2)]
