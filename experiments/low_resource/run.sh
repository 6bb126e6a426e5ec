#!/usr/bin/env bash
# Low-resource curve: test F1 vs number of training sentences, full FT vs LoRA (embedded ja NER).
# The two methods' multiruns run side by side, OMP_NUM_THREADS=1 each (2 cores: 1.2x the throughput of one
# 2-thread job). Every size trains for the same number of optimizer steps (STEPS, default 250 = 10 epochs of
# the 400-sentence set at batch 16): trainer.max_steps replaces the epoch budget and the warm-up/decay follow
# it, so a small set is not also a short run. STEPS=0 restores the task's 10 epochs (the pre-step-budget curve).
# LoRA runs its NER recipe (conf/recipe/ner_lora.yaml: the searched lr + prior_bias). Decoding is pinned to
# argmax (DECODING=viterbi for the task default), as the curve on the page was measured.
#   bash experiments/low_resource/run.sh                 (2 methods x 4 sizes x 3 seeds = 24 runs)
#   SEEDS=1 SIZES=50,400 bash experiments/low_resource/run.sh
#   FULL_SEEDS=1,2 LORA_SEEDS=1,2,3 bash experiments/low_resource/run.sh   (the methods' seeds apart)
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZES=${SIZES:-50,100,200,400}
SEEDS=${SEEDS:-1,2,3}
FULL_SEEDS=${FULL_SEEDS:-$SEEDS}
LORA_SEEDS=${LORA_SEEDS:-$SEEDS}
STEPS=${STEPS:-250}
DECODING=${DECODING:-argmax}
OUT=${OUT:-logs/experiments/low_resource}
BUDGET=()
if [ "$STEPS" != 0 ]; then  # early stopping would cut the equal budget short
  BUDGET=(trainer.max_steps="$STEPS" callbacks.early_stopping=null)
fi
COMMON=(+locale=ja task=ner data.max_train_examples="$SIZES" module.decoding="$DECODING" "${BUDGET[@]}"
        paths.log_dir="$OUT")
lane() {  # one method's multirun on one core; its log beside the runs
  mkdir -p "$OUT"
  OMP_NUM_THREADS=1 .venv/bin/python -m localize.train -m "${COMMON[@]}" "$@" > "$OUT/lane-$1.log" 2>&1
}
pids=()
if [ -n "$FULL_SEEDS" ]; then lane adapter=full_frozen_emb seed="$FULL_SEEDS" "tags=[low_resource,steps$STEPS]" & pids+=($!); fi
if [ -n "$LORA_SEEDS" ]; then lane adapter=lora seed="$LORA_SEEDS" "tags=[low_resource,steps$STEPS]" & pids+=($!); fi
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
[ "$status" = 0 ] || { echo "a lane failed: see $OUT/lane-adapter=*.log" >&2; exit 1; }
# The dictionary baseline at each size (train lexicon of the same subset).
for n in ${SIZES//,/ }; do
  .venv/bin/python -m localize.baselines -m +locale=ja task=ner seed="$SEEDS" data.max_train_examples="$n" \
    paths.log_dir="$OUT" logger=none
done
.venv/bin/python -m localize.report "$OUT" --out experiments/low_resource/results --metric test/f1 --reference full_frozen_emb \
  --archive experiments/low_resource/results/records
