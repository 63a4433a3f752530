#!/usr/bin/env bash
# The factor table (README, "Planned"): from row 3 (OREAL's loss without a token RM) and from
# row 2 (GRPO), row 4's three additions one at a time (pair filter, actor freeze, token weights),
# then all three, plus row 4 with the reference code's optimiser settings and with its policy
# schedule started after the freeze; 3 seeds, at the ablation ladder's budget (48 steps of 16
# prompts x 8). The seed comes first so that every seed runs all the rows in turn (load drift
# does not line up with rows), into its own sweep folder.
#   bash experiments/ablation_ladder/run_factors.sh                       # locally
#   bash experiments/ablation_ladder/run_factors.sh cluster=local_slurm   # or cluster=<your site>
set -euo pipefail
cd "$(dirname "$0")/../.."
make setup
rows=2_grpo,2a_pair_filter,2b_freeze,2c_token_weights,2d_all_three
rows=$rows,3_bc_positives,3a_pair_filter,3b_freeze,3c_token_weights,4_token_rm,4o_reference_optim
# row 4 with the policy's lr schedule started when the freeze ends (README: the dip after the freeze)
rows=$rows,4w_schedule_after_freeze
sweep=runs/ablation_ladder/sweep_factors
.venv/bin/python -m oreal.train -m experiment=ablation_ladder seed=0,1,2 "ladder=$rows" \
    hydra.sweep.dir=$sweep logging.progress_bars=false "$@"
.venv/bin/oreal compare $sweep --extra reward/mean reward/pass_rate kl/ref response/mean_length train/num_kept \
    advantage/mean advantage/kept_group_net advantage/kept_group_net_negative_frac \
    token_rm/accuracy loss/token_rm token_rm/weight_pos token_rm/weight_neg perf/time/step \
    --plot experiments/ablation_ladder/curves_factors.png --json experiments/ablation_ladder/table_factors.json \
    | tee experiments/ablation_ladder/compare_factors.txt
