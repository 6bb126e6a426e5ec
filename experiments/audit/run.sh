#!/usr/bin/env bash
# Label audit on the embedded Japanese NER corpus (500 sentences): 5-fold out-of-fold predictions with the
# default method (e5-small, full FT with frozen word embeddings), read by cleanlab.
#   1. the corpus with 10% of its sentences given a wrong entity type (data.label_noise=0.1): does the
#      ranking find the flips? (precision@k, k = the number flipped, Wilson 95% CI; random = the flip rate)
#   2. with CLEAN=1 also the corpus as shipped: its own most suspicious sentences (label_issues.jsonl)
#   bash experiments/audit/run.sh              (1 audit x 5 folds: ≈ 17 min quiet on 2 CPU cores, 205 s a fold)
#   NOISE="0.05 0.1" SEED=2 CLEAN=1 bash experiments/audit/run.sh
# An interrupted audit is resumed (its finished folds kept) when the script runs again.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-logs/experiments/audit}
SEED=${SEED:-1}
PY=.venv/bin/python
for noise in ${NOISE:-0.1} ${CLEAN:+null}; do
  dir="$OUT/ner-ja-noise$noise-s$SEED"
  if [ -f "$dir/audit.json" ]; then echo "done: $dir"; continue; fi
  $PY -m localize.audit +locale=ja task=ner data.label_noise="$noise" seed="$SEED" resume="$dir"
done
$PY experiments/audit/summarize.py "$OUT" > experiments/audit/results.md
cat experiments/audit/results.md
