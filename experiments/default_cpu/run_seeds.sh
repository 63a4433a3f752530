#!/usr/bin/env bash
# The default experiment three times (seeds 0, 1, 2), each from a cold start of the run folder,
# timed end to end (model build and SFT warm start included the first time), then the table.
#   bash experiments/default_cpu/run_seeds.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
make setup
for seed in 0 1 2; do
    rm -rf "runs/default_cpu/seed${seed}"
    start=$(date +%s)
    .venv/bin/python -m oreal.train seed="${seed}" logging.progress_bars=false
    echo "seed ${seed}: $(( $(date +%s) - start )) s wall-clock" | tee -a runs/default_cpu/wall_clock.txt
done
.venv/bin/python experiments/default_cpu/summarize.py runs/default_cpu/seed0 runs/default_cpu/seed1 runs/default_cpu/seed2
