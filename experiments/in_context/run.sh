#!/usr/bin/env bash
# In-context prompting vs fine-tuning on zh news sentiment (issue 15 items 2-3): Gemma-3-270M scores the
# label words 正面/中性/负面 after K demonstrations (one seeded draw, balanced over the labels; nothing
# trains), against the fine-tuned default (e5-small, frozen word embeddings) and the majority baseline, all
# on the same capped dev/test subsets (data.max_eval_examples), with 95% bootstrap CIs and paired tests.
#   bash experiments/in_context/run.sh                 K=0,4,8 (+ K=8 calibrated), EVAL=300 documents
#   K=0,8 EVAL=100 SEEDS=1,2 bash experiments/in_context/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
K=${K:-0,4,8}
EVAL=${EVAL:-300}
SEEDS=${SEEDS:-1}
OUT=${OUT:-logs/experiments/in_context}
PY=${PY:-.venv/bin/python}
COMMON="+locale=zh task=sentiment data.max_eval_examples=$EVAL paths.log_dir=$OUT"
for k in ${K//,/ }; do
  # shellcheck disable=SC2086
  $PY -m localize.train -m $COMMON model=gemma3_270m adapter=icl adapter.k="$k" seed="$SEEDS" "tags=[in_context,k$k]"
done
k=${K##*,}  # the largest K again, calibrated (Zhao et al. 2021)
# shellcheck disable=SC2086
$PY -m localize.train -m $COMMON model=gemma3_270m adapter=icl adapter.k="$k" adapter.calibrate=true seed="$SEEDS" \
  "tags=[in_context,k$k,calibrated]"
# shellcheck disable=SC2086
$PY -m localize.train -m $COMMON seed="$SEEDS" "tags=[in_context,finetuned]"   # e5-small, the default method
# shellcheck disable=SC2086
$PY -m localize.baselines -m $COMMON seed="$SEEDS" logger=none
$PY -m localize.report "$OUT" --out experiments/in_context/results --metric test/f1_macro --reference baseline_majority
