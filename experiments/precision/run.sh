#!/usr/bin/env bash
# bf16-mixed against fp32 where the quality is decided (issue 20 item 1): zh news sentiment (its default
# recipe) and en→ja UI strings (Gemma-3-270M + LoRA, the translation default), one run per precision with
# the same seed, so both score the same test set: the report pairs them (paired bootstrap) with fp32 as the
# reference. Each record's perf.wall_s is the job's wall time (the translation default's target: ≤ 6 min).
# The NER default's check is the pooled 5-fold CV (README *Results*), not repeated here.
#   bash experiments/precision/run.sh
#   TASKS=sentiment SEED=2 bash experiments/precision/run.sh
# A CPU without native bf16 (no AMX-BF16 / AVX512-BF16) runs the bf16 rows emulated: slow, and not the question.
set -euo pipefail
cd "$(dirname "$0")/../.."
TASKS=${TASKS:-sentiment,translation}
SEED=${SEED:-1}
OUT=${OUT:-logs/experiments/precision}
RESULTS=${RESULTS:-experiments/precision/results}
PY=${PY:-.venv/bin/python}
declare -A RUN=([sentiment]="+locale=zh task=sentiment" [translation]="+locale=ja task=translation adapter=lora")
declare -A METRIC=([sentiment]=test/f1_macro [translation]=test/chrf)
declare -A REF=([sentiment]=full_frozen_emb+fp32 [translation]=lora+fp32)
for t in ${TASKS//,/ }; do
  for p in 32-true:fp32 bf16-mixed:bf16; do
    # shellcheck disable=SC2086  # RUN holds several overrides
    $PY -m localize.train ${RUN[$t]} seed="$SEED" trainer.precision="${p%%:*}" paths.log_dir="$OUT/$t" \
      "tags=[precision,${p##*:}]"
  done
  $PY -m localize.report "$OUT/$t" --out "$RESULTS/$t" --metric "${METRIC[$t]}" --reference "${REF[$t]}" \
    --archive "$RESULTS/$t/records"
done
