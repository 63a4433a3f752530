#!/usr/bin/env bash
# The pass-rate file of the paper-regime ladder (conf/experiment/ablation_ladder_paper_regime.yaml):
# every prompt of the CPU task's train split sampled 16 times by the warm model (the SFT warm
# start of `ablation_ladder`, trained first if not cached), graded; then the same with 8 samples
# and another seed as an independent check, and the band report (is the balanced stream near the
# paper's 0.2-0.4 pass rate? if not, which level mix is).
#   bash experiments/ablation_ladder/passrates.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
make setup
out=runs/ablation_ladder_paper_regime
mkdir -p "$out"
warm=$(.venv/bin/python experiments/ablation_ladder/warm_model.py experiment=ablation_ladder)
echo "warm model: $warm"
if [[ ! -f "$out/passrates_warm.jsonl" ]]; then
    .venv/bin/oreal passrate experiment=ablation_ladder seed=0 --k 16 --model "$warm" --out "$out/passrates_warm.tmp.jsonl"
    mv "$out/passrates_warm.tmp.jsonl" "$out/passrates_warm.jsonl"
fi
if [[ ! -f "$out/passrates_warm_check.jsonl" ]]; then
    .venv/bin/oreal passrate experiment=ablation_ladder seed=1 --k 8 --model "$warm" --out "$out/passrates_warm_check.tmp.jsonl"
    mv "$out/passrates_warm_check.tmp.jsonl" "$out/passrates_warm_check.jsonl"
fi
echo "$warm" > "$out/passrates_warm.model.txt"
.venv/bin/python experiments/ablation_ladder/band_report.py "$out/passrates_warm.jsonl" \
    --check "$out/passrates_warm_check.jsonl" | tee "$out/band_report.md"
