#!/usr/bin/env bash
# The whole ablation ladder (5 rows + RLOO) x 3 seeds as one Hydra multirun, then the table and
# the curves. Locally (each point in turn, in this process) by default; through Slurm with
#   bash experiments/ablation_ladder/run.sh cluster=local_slurm      # or cluster=<your site>
set -euo pipefail
cd "$(dirname "$0")/../.."
make setup
# the ladder's rows by name: conf/ladder/ also holds the factor table's rows (run_factors.sh)
rows=1_reinforce,2_grpo,3_bc_positives,4_token_rm,5_skill_replay,baseline_rloo
.venv/bin/python -m oreal.train -m experiment=ablation_ladder "ladder=$rows" seed=0,1,2 logging.progress_bars=false "$@"
.venv/bin/oreal compare runs/ablation_ladder/sweep --plot experiments/ablation_ladder/curves.png \
    --json experiments/ablation_ladder/table.json | tee experiments/ablation_ladder/compare.txt
