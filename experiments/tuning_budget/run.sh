#!/usr/bin/env bash
# Equal tuning budget per method (issue 19 item 3), then 5-fold CV of each method's tuned recipe.
# Per method: an Optuna search (hparams_search=ner_budget: N_TRIALS trials, the same batch sizes and epoch
# cap for all, adapter.lr log-uniform over [default/5, default×5]) on fold 0's dev part (fold 0's test part
# is not read by the choice), then the best trial's parameters on all folds (+cv=kfold, tagged tuned), the
# baselines on every fold, and the report: pooled out-of-fold F1 with 95% CIs, paired tests.
#   bash experiments/tuning_budget/run.sh                               (4 methods × (4 trials + 5 folds))
#   METHODS=lora,full_frozen_emb N_TRIALS=6 bash experiments/tuning_budget/run.sh
#   DEFAULTS=lora,full_frozen_emb ...   also these methods' default recipes on the same folds (the "default" rows)
#   PRIOR_BIAS=lora ...                 also these methods' default recipes with module.prior_bias=true
#   What ran for the page (README):
#   METHODS=lora,full_frozen_emb DEFAULTS=full_frozen_emb PRIOR_BIAS=lora bash experiments/tuning_budget/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
METHODS=${METHODS:-lora,full_frozen_emb,adalora,prefix}
DEFAULTS=${DEFAULTS:-}
PRIOR_BIAS=${PRIOR_BIAS:-}
N_TRIALS=${N_TRIALS:-4}
SEED=${SEED:-1}
FOLDS=${FOLDS:-5}
OUT=${OUT:-logs/experiments/tuning_budget}
RESULTS=${RESULTS:-experiments/tuning_budget/results}
PY=${PY:-.venv/bin/python}
FOLD0="seed=$SEED data.cv_folds=$FOLDS data.cv_fold=0"
mkdir -p "$OUT"
for m in ${METHODS//,/ }; do
  d=$($PY -m localize.train +locale=ja task=ner adapter="$m" --cfg job -p adapter.lr | tail -1)
  range=$($PY -c "d = float('$d'); print(f'{d / 5:.3g}, {d * 5:.3g}')")
  echo "== $m: default lr $d, search lr in [$range]"
  # shellcheck disable=SC2086
  $PY -m localize.train -m hparams_search=ner_budget +locale=ja adapter="$m" $FOLD0 \
    "adapter.lr=tag(log, interval($range))" hydra.sweeper.n_trials="$N_TRIALS" \
    paths.log_dir="$OUT/search/$m" "tags=[tuning_budget,search]"
  search=$(ls -d "$OUT/search/$m"/multiruns/* | tail -1)
  best=$($PY -c "import sys, yaml; print(' '.join(f'{k}={v}' for k, v in
    yaml.safe_load(open(sys.argv[1]))['best_params'].items()))" "$search/optimization_results.yaml")
  echo "== $m: best $best" | tee -a "$OUT/best.txt"
  # shellcheck disable=SC2086
  $PY -m localize.train +cv=kfold +locale=ja task=ner adapter="$m" $best seed="$SEED" data.cv_folds="$FOLDS" \
    paths.log_dir="$OUT/cv" "tags=[tuning_budget,cv$FOLDS,tuned]"
done
CV="$PY -m localize.train +cv=kfold +locale=ja task=ner seed=$SEED data.cv_folds=$FOLDS paths.log_dir=$OUT/cv"
for m in ${DEFAULTS//,/ }; do
  $CV adapter="$m" "tags=[tuning_budget,cv$FOLDS]"
done
for m in ${PRIOR_BIAS//,/ }; do  # the all-O collapse's remedy (experiments/lora_collapse) on the default recipe
  $CV adapter="$m" module.prior_bias=true "tags=[tuning_budget,cv$FOLDS,prior_bias]"
done
$PY -m localize.baselines +cv=kfold +locale=ja task=ner seed="$SEED" data.cv_folds="$FOLDS" \
  paths.log_dir="$OUT/cv" logger=none
mkdir -p "$RESULTS/../trials"
for m in ${METHODS//,/ }; do  # each search's trial table
  $PY experiments/lora_search/trials.py "$(ls -d "$OUT/search/$m"/multiruns/* | tail -1)" > "$RESULTS/../trials/$m.md"
done
# Against the default recipe (full_frozen_emb's untagged runs; with DEFAULTS=1), and tuned against tuned.
$PY -m localize.report "$OUT/cv" --out "$RESULTS" --metric test/f1 --reference full_frozen_emb
$PY -m localize.report "$OUT/cv" --out "$RESULTS/vs_tuned_full" --metric test/f1 --reference full_frozen_emb+tuned
