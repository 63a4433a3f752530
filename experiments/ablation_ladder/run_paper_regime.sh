#!/usr/bin/env bash
# The whole ladder (5 rows + RLOO) x 3 seeds in the paper's data regime (README, "Planned"):
# difficulty-balanced prompts by the warm model's pass rates. Needs the pass-rate file first:
#   bash experiments/ablation_ladder/passrates.sh        # then read its band report
#   bash experiments/ablation_ladder/run_paper_regime.sh # locally, or add cluster=<your site>
set -euo pipefail
cd "$(dirname "$0")/../.."
make setup
rows=1_reinforce,2_grpo,3_bc_positives,4_token_rm,5_skill_replay,baseline_rloo
sweep=runs/ablation_ladder_paper_regime/sweep
.venv/bin/python -m oreal.train -m experiment=ablation_ladder_paper_regime seed=0,1,2 "ladder=$rows" \
    hydra.sweep.dir=$sweep logging.progress_bars=false "$@"
.venv/bin/oreal compare $sweep --extra reward/mean reward/pass_rate kl/ref response/mean_length train/num_kept \
    advantage/mean advantage/kept_group_net advantage/kept_group_net_negative_frac \
    token_rm/accuracy loss/token_rm token_rm/weight_pos token_rm/weight_neg perf/time/step \
    --plot experiments/ablation_ladder/curves_paper_regime.png --json experiments/ablation_ladder/table_paper_regime.json \
    | tee experiments/ablation_ladder/compare_paper_regime.txt
