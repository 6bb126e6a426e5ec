#!/usr/bin/env bash
# Few-shot en→ja UI strings (issue 15 item 3): the embedded Gemma-3-270M prompted with k example pairs
# (k = 0, 1, 4, 8: nothing trains) against LoRA fine-tuned on 100 and 1,000 pairs, one seed, on the same
# capped dev/test strings (data.max_eval_examples); chrF, BLEU and placeholder preservation, each with a
# 95% bootstrap CI, paired tests against zero-shot prompting.
#   bash experiments/few_shot/translation.sh
#   ICL_K=0,4 PAIRS=100 EVAL=50 bash experiments/few_shot/translation.sh
#   SMOKE=1 bash experiments/few_shot/translation.sh     (tiny causal LM: the plumbing only, in a scratch dir)
set -euo pipefail
cd "$(dirname "$0")/../.."
ICL_K=${ICL_K:-0,1,4,8}
PAIRS=${PAIRS:-100,1000}
EVAL=${EVAL:-100}
SEED=${SEED:-1}
OUT=${OUT:-logs/experiments/few_shot_translation}
RESULTS=${RESULTS:-experiments/few_shot/results/translation}
PY=${PY:-.venv/bin/python}
MODEL=(model=gemma3_270m)
LORA_BUDGET=()
if [[ "${SMOKE:-0}" == 1 ]]; then  # the step cap only for LoRA: in-context runs train 0 steps
  MODEL=(model=tiny_causal) LORA_BUDGET=(trainer.max_steps=2) EVAL=8 PAIRS=20 ICL_K=0,1
  OUT=${SMOKE_OUT:-/tmp/few_shot_translation_smoke} RESULTS=$OUT/results
fi
COMMON=(+locale=ja task=translation seed="$SEED" data.max_eval_examples="$EVAL" paths.log_dir="$OUT" "${MODEL[@]}")
for k in ${ICL_K//,/ }; do  # one tag per k: the report tells recipes of one adapter apart by their tags
  $PY -m localize.train -m "${COMMON[@]}" adapter=icl adapter.k="$k" "tags=[few_shot,k$k]"
done
# shellcheck disable=SC2086
$PY -m localize.train -m "${COMMON[@]}" adapter=lora data.max_train_examples="$PAIRS" "${LORA_BUDGET[@]}" "tags=[few_shot]"
$PY -m localize.report "$OUT" --out "$RESULTS" --metric test/chrf --reference icl+k0
