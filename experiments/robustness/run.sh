#!/usr/bin/env bash
# Robustness to input noise (issue 17, items 5-6): the default ja NER recipe (e5-small, full FT with frozen word
# embeddings, bf16) trained plain, with typo augmentation (data.augment=[typos]) and with FGM adversarial
# training (+adversarial=fgm), 3 seeds, every run the same 250 optimizer steps (early stopping off, so the
# augmented copies and FGM's double pass buy no extra updates). Each run is then scored on the noise suite
# (conf/perturb/noise.yaml: typos, punctuation): typos is the noise the augmentation saw, punctuation is not.
# table.py pools the seeds: clean and perturbed F1 with 95% CIs, the drop, and each method against plain.
# The two training lanes run side by side, OMP_NUM_THREADS=1 each (plain+typos: 6 runs; FGM: 3 runs at ~2x).
#   bash experiments/robustness/run.sh                 (SEEDS=1,2,3)
#   SEEDS=1 bash experiments/robustness/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SEEDS=${SEEDS:-1,2,3}
STEPS=${STEPS:-250}
OUT=${OUT:-logs/experiments/robustness}
COMMON=(+locale=ja task=ner seed="$SEEDS" trainer.max_steps="$STEPS" callbacks.early_stopping=null
        paths.log_dir="$OUT")
mkdir -p "$OUT"
lane() {  # one multirun on one core; its log beside the runs
  local name=$1; shift
  OMP_NUM_THREADS=1 .venv/bin/python -m localize.train -m "${COMMON[@]}" "$@" > "$OUT/lane-$name.log" 2>&1
}
lane augment 'data.augment=[],[typos]' "tags=[robustness]" & a=$!
lane fgm +adversarial=fgm "tags=[robustness,fgm]" & b=$!
status=0
wait "$a" || status=1
wait "$b" || status=1
[ "$status" = 0 ] || { echo "a lane failed: see $OUT/lane-*.log" >&2; exit 1; }
# Every finished training run not yet scored on the suite (table.py --pending lists them).
for run in $(.venv/bin/python experiments/robustness/table.py "$OUT" --pending); do
  .venv/bin/python -m localize.evaluate run="$run" +perturb=noise logger=none paths.log_dir="$OUT" \
    "tags=[robustness]" | grep '^\[localize\]'
done
.venv/bin/python experiments/robustness/table.py "$OUT" --out experiments/robustness/results
