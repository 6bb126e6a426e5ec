#!/usr/bin/env bash
# Full FT vs PEFT on the embedded Japanese NER data (hironsan, seeded 400/50/50), 3 seeds, then the report.
#   bash experiments/full_vs_peft/run.sh            (≈ 15 runs × 5–9 min on 2 CPU cores)
#   SEEDS=1 ADAPTERS=lora,prefix bash experiments/full_vs_peft/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SEEDS=${SEEDS:-1,2,3}
ADAPTERS=${ADAPTERS:-full,full_frozen_emb,lora,adalora,prefix}
OUT=${OUT:-logs/experiments/full_vs_peft}
.venv/bin/python -m localize.train -m +locale=ja task=ner adapter="$ADAPTERS" seed="$SEEDS" \
  paths.log_dir="$OUT" tags=[full_vs_peft]
# Reference baselines on each seed's split (the split is seeded too), recorded beside the runs.
for s in ${SEEDS//,/ }; do
  .venv/bin/python -m localize.baselines +locale=ja task=ner seed="$s" paths.log_dir="$OUT" logger=none
done
.venv/bin/python -m localize.report "$OUT" --out experiments/full_vs_peft/results --metric test/f1
