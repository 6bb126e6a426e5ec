#!/usr/bin/env bash
# Low-resource curve: test F1 vs number of training sentences, full FT vs LoRA (embedded ja NER).
#   bash experiments/low_resource/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZES=${SIZES:-50,100,200,400}
OUT=${OUT:-logs/experiments/low_resource}
.venv/bin/python -m localize.train -m +locale=ja task=ner adapter=full_frozen_emb,lora \
  data.max_train_examples="$SIZES" seed=${SEEDS:-1} paths.log_dir="$OUT" tags=[low_resource]
# The dictionary baseline at each size (train lexicon of the same subset).
for n in ${SIZES//,/ }; do
  .venv/bin/python -m localize.baselines +locale=ja task=ner seed=${SEEDS:-1} data.max_train_examples="$n" \
    paths.log_dir="$OUT" logger=none
done
.venv/bin/python -m localize.report "$OUT" --out experiments/low_resource/results --metric test/f1
