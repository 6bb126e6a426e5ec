#!/usr/bin/env bash
# Low-resource curve: test F1 vs number of training sentences, full FT vs LoRA (embedded ja NER).
# Measured: each method's multirun in its own process, OMP_NUM_THREADS=1, side by side on the 2 cores.
# Every size trains for the same number of optimizer steps (STEPS, default 250 = 10 epochs of the 400-sentence
# set at batch 16): trainer.max_steps replaces the epoch budget and the warm-up/decay follow it, so a small
# set is not also a short run. STEPS=0 restores the task's 10 epochs (the pre-step-budget curve).
#   bash experiments/low_resource/run.sh                 (2 methods x 4 sizes x 3 seeds = 24 runs)
#   SEEDS=1 SIZES=50,400 bash experiments/low_resource/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZES=${SIZES:-50,100,200,400}
SEEDS=${SEEDS:-1,2,3}
STEPS=${STEPS:-250}
OUT=${OUT:-logs/experiments/low_resource}
BUDGET=()
if [ "$STEPS" != 0 ]; then  # early stopping would cut the equal budget short
  BUDGET=(trainer.max_steps="$STEPS" callbacks.early_stopping=null)
fi
COMMON=(+locale=ja task=ner data.max_train_examples="$SIZES" seed="$SEEDS" "${BUDGET[@]}" paths.log_dir="$OUT")
.venv/bin/python -m localize.train -m "${COMMON[@]}" adapter=full_frozen_emb "tags=[low_resource,steps$STEPS]"
# LoRA with the all-O collapse's remedy (experiments/lora_collapse): the head's bias starts at the tag prior.
.venv/bin/python -m localize.train -m "${COMMON[@]}" adapter=lora module.prior_bias=true \
  "tags=[low_resource,steps$STEPS,prior_bias]"
# The dictionary baseline at each size (train lexicon of the same subset).
for n in ${SIZES//,/ }; do
  .venv/bin/python -m localize.baselines -m +locale=ja task=ner seed="$SEEDS" data.max_train_examples="$n" \
    paths.log_dir="$OUT" logger=none
done
.venv/bin/python -m localize.report "$OUT" --out experiments/low_resource/results --metric test/f1
