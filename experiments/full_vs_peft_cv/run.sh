#!/usr/bin/env bash
# Full FT vs PEFT on the embedded Japanese NER data (hironsan, 500 sentences) as 5-fold cross-validation:
# every sentence is tested once, by the fold that held it out; the reference baselines run on every fold;
# the report pools the folds' out-of-fold predictions (95% bootstrap CI, paired tests) per method.
#   bash experiments/full_vs_peft_cv/run.sh                 (25 runs, ≈ 1 h 35 min on 2 CPU cores: README)
#   SEEDS=1,2,3 bash experiments/full_vs_peft_cv/run.sh     (three fold draws, ≈ 4 h 50 min)
#   FP32=0 bash experiments/full_vs_peft_cv/run.sh          (without the fp32 row of the default recipe)
#   TUNED=1 bash experiments/full_vs_peft_cv/run.sh         (+ the searched LoRA recipe, ≈ 18 min more)
#   FOLDS=3 ADAPTERS=lora,full bash experiments/full_vs_peft_cv/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SEEDS=${SEEDS:-1}
FOLDS=${FOLDS:-5}
ADAPTERS=${ADAPTERS:-full,full_frozen_emb,lora,adalora,prefix}
OUT=${OUT:-logs/experiments/full_vs_peft_cv}
RESULTS=${RESULTS:-experiments/full_vs_peft_cv/results}
PY=.venv/bin/python
if [ "${FP32:-1}" = 1 ]; then  # the default recipe again in fp32: bf16 autocast (the default here) vs fp32,
  # paired on the same pooled out-of-fold sentences (the report's row full_frozen_emb+fp32)
  $PY -m localize.train +cv=kfold +locale=ja task=ner adapter=full_frozen_emb seed="$SEEDS" data.cv_folds="$FOLDS" \
    trainer.precision=32-true paths.log_dir="$OUT" "tags=[full_vs_peft,cv$FOLDS,fp32]"
fi
# +cv=kfold (conf/cv/kfold.yaml) sweeps data.cv_fold=0..FOLDS-1; with the adapters and seeds that is one
# multirun of FOLDS × adapters × seeds jobs. Each job's run.json carries data.cv and cv_group.
$PY -m localize.train +cv=kfold +locale=ja task=ner adapter="$ADAPTERS" seed="$SEEDS" data.cv_folds="$FOLDS" \
  paths.log_dir="$OUT" "tags=[full_vs_peft,cv$FOLDS]"
if [ "${TUNED:-0}" = 1 ]; then  # the offline search's best LoRA (experiments/lora_search), same folds
  $PY -m localize.train +cv=kfold experiment=ner_lora_searched +locale=ja seed="$SEEDS" data.cv_folds="$FOLDS" \
    paths.log_dir="$OUT" "tags=[full_vs_peft,cv$FOLDS,searched]"
fi
# The dictionary and majority baselines on each fold's split (seconds per fold).
$PY -m localize.baselines +cv=kfold +locale=ja task=ner seed="$SEEDS" data.cv_folds="$FOLDS" \
  paths.log_dir="$OUT" logger=none
$PY -m localize.report "$OUT" --out "$RESULTS" --metric test/f1
# Every method paired against the default recipe (full_frozen_emb, bf16): its fp32 row is the precision check.
$PY -m localize.report "$OUT" --out "$RESULTS/vs_default" --metric test/f1 --reference full_frozen_emb
