#!/usr/bin/env bash
# Offline hyper-parameter search for LoRA on the embedded ja NER data (Hydra multirun + Optuna, the
# same space as the W&B sweep conf/sweep/ner_lora.yaml), a table of the trials, then the best
# parameters re-run on seeds 1-3 (other splits: the search chose on seed 42's dev set) for a figure
# comparable with experiments/full_vs_peft.
#   bash experiments/lora_search/run.sh            (N_TRIALS=6 by default; 2-8 min per trial on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-logs/experiments/lora_search}
.venv/bin/python -m localize.train -m hparams_search=ner_lora_optuna +locale=ja \
  hydra.sweeper.n_trials="${N_TRIALS:-6}" paths.log_dir="$OUT" tags=[lora_search]
SEARCH=$(ls -d "$OUT"/multiruns/* | tail -1)
.venv/bin/python experiments/lora_search/trials.py "$SEARCH" > experiments/lora_search/results.md
# The best parameters as Hydra overrides (key=value ...).
BEST=$(.venv/bin/python -c "import sys, yaml; print(' '.join(f'{k}={v}' for k, v in
  yaml.safe_load(open(sys.argv[1]))['best_params'].items()))" "$SEARCH/optimization_results.yaml")
# shellcheck disable=SC2086
.venv/bin/python -m localize.train -m +locale=ja task=ner adapter=lora $BEST seed=1,2,3 \
  paths.log_dir="$OUT/confirm" tags=[lora_search_confirm]
.venv/bin/python -m localize.report "$OUT/confirm" --out experiments/lora_search/confirm --metric test/f1
cat experiments/lora_search/results.md experiments/lora_search/confirm/comparison.md
