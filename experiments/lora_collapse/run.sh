#!/usr/bin/env bash
# Why LoRA sits at all-O (span F1 0) at lr >= 5e-4 on ja NER (issue 19 item 3): the same collapsing run
# (LoRA r16, lr 2e-3, batch 16, 10 epochs, CV fold 0 of seed 1) three ways, and its per-epoch curves:
#   plain                     the collapse
#   module.head_warmup_ratio  the head trains alone for the first 10% of steps (LP-FT), then LoRA joins
#   module.warmup_ratio=0.3   a longer lr warm-up instead (the same delay of the body's big steps)
#   module.prior_bias=true    the head's bias starts at the log label prior (no push toward the prior)
#   bash experiments/lora_collapse/run.sh      (4 runs, ~3.5 min each on 2 quiet cores)
#   ONLY=prior LR=7.4e-4 bash experiments/lora_collapse/run.sh    (only the prior_bias run, at another lr)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-logs/experiments/lora_collapse}
PY=${PY:-.venv/bin/python}
LR=${LR:-2e-3}
RUN="$PY -m localize.train +locale=ja task=ner adapter=lora adapter.lr=$LR seed=1 data.cv_folds=5 data.cv_fold=0"
if [ "${ONLY:-}" != prior ]; then
  $RUN -m "module.head_warmup_ratio=0,0.1" paths.log_dir="$OUT" "tags=[lora_collapse]"
  $RUN module.warmup_ratio=0.3 paths.log_dir="$OUT" "tags=[lora_collapse]"
fi
$RUN module.prior_bias=true paths.log_dir="$OUT" "tags=[lora_collapse]"
$PY experiments/lora_collapse/curves.py "$OUT" | tee experiments/lora_collapse/curves.md
