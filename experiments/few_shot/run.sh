#!/usr/bin/env bash
# Few-shot curve on zh news sentiment (issue 15 item 3): macro-F1 and accuracy vs K labelled documents per
# class, fine-tuned methods against in-context prompting and the majority baseline, on one fixed capped
# dev/test subset (data.max_eval_examples), 95% bootstrap CIs, paired tests against the majority baseline.
# - K: data.train_per_label=K (drawn with the seed, so each seed is another draw; "all" = the default 1,600).
# - Fine-tuned methods train STEPS optimizer steps at every K (early stopping off, the best dev checkpoint is
#   tested; dev is scored 4 times): the step budget of the default recipe (2 epochs of 1,600 at batch 16), so
#   a small K is not also a short run (at K=8, 24 documents, that is 133 epochs).
# - Tuning budget: each method gets the same lr search (hparams_search=lr_budget, N_TRIALS trials, trial 0
#   its default lr, the others log-uniform in [default/5, default×5]) at K=TUNE_K, seed 1, on dev only; the
#   best lr then runs at every K and seed.
# - In-context: Gemma-3-270M scores 正面/中性/负面 after ICL_K demonstrations in total (balanced over the 3
#   labels: 0, 1, 4, 8 per class), drawn from the seed's K=ICL_POOL documents per class, each cut to
#   DEMO_CHARS characters so 8 per class fit the prompt; the demonstrations are fixed, so their KV cache is shared.
#   bash experiments/few_shot/run.sh
#   K=8,32 SEEDS=1 METHODS=lora N_TRIALS=2 bash experiments/few_shot/run.sh
#   METHODS= ICL_K=0,24 SEEDS=1 bash experiments/few_shot/run.sh   (in-context at 0 and 8 per class, and the majority)
#   SMOKE=1 bash experiments/few_shot/run.sh     (tiny models, 2 steps: the plumbing only, in a scratch dir)
set -euo pipefail
cd "$(dirname "$0")/../.."
K=${K:-8,32,128,all}
SEEDS=${SEEDS:-1,2,3}
METHODS=${METHODS-prompt_tuning,lora,full_frozen_emb}  # METHODS= (empty): in-context and the baseline only
N_TRIALS=${N_TRIALS:-4}
CHECK_K=${CHECK_K-128,all}  # Ks that also run each method's default lr (CHECK_K= : none)
TUNE_K=${TUNE_K:-32}
STEPS=${STEPS:-200}
EVAL=${EVAL:-300}
ICL_K=${ICL_K-0,3,12,24}  # ICL_K= (empty): no in-context runs
ICL_POOL=${ICL_POOL:-8}
DEMO_CHARS=${DEMO_CHARS:-48}
OUT=${OUT:-logs/experiments/few_shot}
RESULTS=${RESULTS:-experiments/few_shot/results}
PY=${PY:-.venv/bin/python}
FT_MODEL=() ICL_MODEL=(model=gemma3_270m)
if [[ "${SMOKE:-0}" == 1 ]]; then
  FT_MODEL=(model=tiny_random) ICL_MODEL=(model=tiny_causal data.max_length=512) STEPS=2 EVAL=12 N_TRIALS=2
  ICL_K=0,3  # the tiny model's 512-token context
  OUT=${SMOKE_OUT:-/tmp/few_shot_smoke} RESULTS=$OUT/results
fi
COMMON=(+locale=zh task=sentiment data.max_eval_examples="$EVAL" paths.log_dir="$OUT/curve")
# Dev is scored every STEPS/4 steps, not every epoch (K=8 would be 100 epochs of 2 steps, each with a dev pass).
FT=(trainer.max_steps="$STEPS" +trainer.val_check_interval=$((STEPS >= 4 ? STEPS / 4 : 1))
    +trainer.check_val_every_n_epoch=null callbacks.early_stopping=null)
per_label() { [[ "$1" == all ]] && echo "data.train_per_label=null" || echo "data.train_per_label=$1"; }
mkdir -p "$RESULTS/trials"
for m in ${METHODS//,/ }; do
  d=$($PY -m localize.train "${COMMON[@]}" adapter="$m" --cfg job -p adapter.lr | tail -1)
  range=$($PY -c "d = float('$d'); print(f'{d / 5:.3g}, {d * 5:.3g}')")
  echo "== $m: default lr $d, search lr in [$range] at K=$TUNE_K"
  # A finished search is reused, so a curve cut off later resumes without searching again (rm -r it to redo).
  search=$(ls -d "$OUT/search/$m"/multiruns/* 2>/dev/null | tail -1 || true)
  if [[ ! -f "$search/optimization_results.yaml" ]]; then
    $PY -m localize.train -m hparams_search=lr_budget "${COMMON[@]}" "${FT_MODEL[@]}" "${FT[@]}" adapter="$m" seed=1 \
      "$(per_label "$TUNE_K")" "adapter.lr=tag(log, interval($range))" hydra.sweeper.n_trials="$N_TRIALS" \
      paths.log_dir="$OUT/search/$m" "tags=[few_shot,search]"
    search=$(ls -d "$OUT/search/$m"/multiruns/* | tail -1)
  fi
  $PY experiments/lora_search/trials.py "$search" > "$RESULTS/trials/$m.md"
  lr=$($PY -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['best_params']['adapter.lr'])" \
    "$search/optimization_results.yaml")
  echo "== $m: lr $lr" | tee -a "$OUT/best.txt"
  for k in ${K//,/ }; do
    $PY -m localize.train -m "${COMMON[@]}" "${FT_MODEL[@]}" "${FT[@]}" adapter="$m" adapter.lr="$lr" seed="$SEEDS" \
      "$(per_label "$k")" "tags=[few_shot]"  # the training size tells the Ks apart
  done
  # The lr searched at TUNE_K may not carry to larger K: the default lr beside it there (its own row, default_lr).
  for k in ${CHECK_K//,/ }; do
    $PY -m localize.train -m "${COMMON[@]}" "${FT_MODEL[@]}" "${FT[@]}" adapter="$m" seed="$SEEDS" \
      "$(per_label "$k")" "tags=[few_shot,default_lr]"
  done
done
for k in ${ICL_K//,/ }; do
  seeds=$SEEDS pool=$ICL_POOL
  [[ "$k" == 0 ]] && seeds=${SEEDS%%,*}  # zero-shot reads no training document: one run
  $PY -m localize.train -m "${COMMON[@]}" "${ICL_MODEL[@]}" adapter=icl adapter.k="$k" data.demo_chars="$DEMO_CHARS" \
    seed="$seeds" "$(per_label "$pool")" "tags=[few_shot,k$k]"
done
# The majority label of the whole training split (a K-draw is balanced: every label would tie). It runs once;
# the report pairs every K with it on the same test documents.
$PY -m localize.baselines -m "${COMMON[@]}" "${FT_MODEL[@]}" seed="$SEEDS" logger=none
$PY -m localize.report "$OUT/curve" --out "$RESULTS" --metric test/f1_macro --reference baseline_majority
