#!/usr/bin/env bash
# Equal tuning budget per method (issue 19 items 3 and 7), then 5-fold CV of each method's recipes.
# Per method: an Optuna search (hparams_search=ner_budget: N_TRIALS trials; trial 0 is the method's default
# recipe, the others draw batch size, epochs (the compute cap) and adapter.lr log-uniform over
# [default/5, default×5]) on fold 0's dev part (its test part is not read by the choice); then on all folds
# the default recipe and, where the search chose another one, the tuned recipe (tagged tuned); a CRF head
# on the default recipe; every trained fold re-tested with Viterbi decoding from the same checkpoint
# (tagged viterbi); the baselines; and the report: pooled out-of-fold F1 with 95% CIs, paired tests.
#   bash experiments/tuning_budget/run.sh                     (4 methods: ≈ 3 h on 2 cores)
#   METHODS=lora N_TRIALS=6 bash experiments/tuning_budget/run.sh
#   PRIOR_BIAS=lora,adalora,prefix   these methods run with module.prior_bias=true (search and folds: the
#                                    all-O collapse's remedy, experiments/lora_collapse)
#   DEFAULTS=...     methods whose default recipe runs on the folds (default: METHODS; a method whose folds
#                    are already in OUT can be left out)
#   CRF=full_frozen_emb   methods whose default recipe also runs with module.crf=true
#   BASELINES=0      the dictionary and majority baselines are already on these folds in OUT
#   What ran for the page (README): the defaults of full_frozen_emb and lora+prior_bias were already in OUT
#   DEFAULTS=adalora,prefix BASELINES=0 bash experiments/tuning_budget/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
METHODS=${METHODS:-full_frozen_emb,lora,adalora,prefix}
PRIOR_BIAS=${PRIOR_BIAS:-lora,adalora,prefix}
DEFAULTS=${DEFAULTS:-$METHODS}
CRF=${CRF:-full_frozen_emb}
N_TRIALS=${N_TRIALS:-4}
SEED=${SEED:-1}
FOLDS=${FOLDS:-5}
OUT=${OUT:-logs/experiments/tuning_budget}
RESULTS=${RESULTS:-experiments/tuning_budget/results}
PY=${PY:-.venv/bin/python}
FOLD0="seed=$SEED data.cv_folds=$FOLDS data.cv_fold=0"
CV="$PY -m localize.train +cv=kfold +locale=ja task=ner seed=$SEED data.cv_folds=$FOLDS paths.log_dir=$OUT/cv"
BASELINES=${BASELINES:-1}
TUNED=()
mkdir -p "$OUT" "$RESULTS/trials"
extra() { [[ ",$PRIOR_BIAS," == *",$1,"* ]] && echo "module.prior_bias=true" || true; }
tags() { [[ ",$PRIOR_BIAS," == *",$1,"* ]] && echo "tuning_budget,cv$FOLDS,prior_bias" || echo "tuning_budget,cv$FOLDS"; }
for m in ${METHODS//,/ }; do
  d=$($PY -m localize.train +locale=ja task=ner adapter="$m" --cfg job -p adapter.lr | tail -1)
  range=$($PY -c "d = float('$d'); print(f'{d / 5:.3g}, {d * 5:.3g}')")
  echo "== $m: default lr $d, search lr in [$range]"
  # shellcheck disable=SC2046
  $PY -m localize.train -m hparams_search=ner_budget +locale=ja adapter="$m" $FOLD0 $(extra "$m") \
    "adapter.lr=tag(log, interval($range))" hydra.sweeper.n_trials="$N_TRIALS" \
    paths.log_dir="$OUT/search/$m" "tags=[tuning_budget,search]"
  search=$(ls -d "$OUT/search/$m"/multiruns/* | tail -1)
  $PY experiments/lora_search/trials.py "$search" > "$RESULTS/trials/$m.md"
  read -r trial best < <($PY -c "import sys, yaml; r = yaml.safe_load(open(sys.argv[1]))
print(r['best_trial'], ' '.join(f'{k}={v}' for k, v in r['best_params'].items()))" "$search/optimization_results.yaml")
  echo "== $m: best trial $trial: $best" | tee -a "$OUT/best.txt"
  # trial 0 is the default recipe: its folds are the default row
  [[ "$trial" != 0 ]] && TUNED+=("$m $best")
done
for m in ${DEFAULTS//,/ }; do
  # shellcheck disable=SC2046
  $CV adapter="$m" $(extra "$m") "tags=[$(tags "$m")]"
done
for m in ${CRF//,/ }; do
  # shellcheck disable=SC2046
  $CV adapter="$m" module.crf=true $(extra "$m") "tags=[$(tags "$m"),crf]"
done
for t in "${TUNED[@]}"; do
  read -r m best <<< "$t"
  # shellcheck disable=SC2046,SC2086
  $CV adapter="$m" $best $(extra "$m") "tags=[$(tags "$m"),tuned]"
done
[[ "$BASELINES" == 1 ]] && $PY -m localize.baselines +cv=kfold +locale=ja task=ner seed="$SEED" data.cv_folds="$FOLDS" \
  paths.log_dir="$OUT/cv" logger=none
bash experiments/tuning_budget/viterbi.sh "$OUT/cv"
$PY -m localize.report "$OUT/cv" --out "$RESULTS" --metric test/f1 --reference full_frozen_emb
