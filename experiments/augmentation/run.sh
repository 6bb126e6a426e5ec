#!/usr/bin/env bash
# Mention replacement at 100 labelled ja NER sentences (issue 17, item 6): the default recipe (e5-small,
# full FT with frozen word embeddings, bf16) with and without data.augment=[mention_swap], 3 seeds, the same
# budget of 250 optimizer steps for every run (an augmented run sees each labelled sentence's copy, not more
# steps); then the report: 95% CIs per method and the paired test against the plain runs (same seeds, same
# test sentences).
#   bash experiments/augmentation/run.sh            (N=100 SEEDS=1,2,3; ~4 min per run on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-logs/experiments/augmentation}
.venv/bin/python -m localize.train -m +locale=ja task=ner "seed=${SEEDS:-1,2,3}" "data.max_train_examples=${N:-100}" \
  trainer.max_steps=250 'data.augment=[],[mention_swap]' paths.log_dir="$OUT" tags=[augmentation]
.venv/bin/python -m localize.report "$OUT" --out experiments/augmentation/results --reference full_frozen_emb
