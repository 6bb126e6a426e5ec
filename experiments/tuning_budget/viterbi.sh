#!/usr/bin/env bash
# Re-test every trained CV fold under FOLDER with constrained Viterbi decoding (issue 19 item 7): the same
# checkpoint, the same test fold, logits decoded as valid IOB2 (localize.models.decoding). Each re-test is a
# `localize.evaluate` record tagged like its run plus `viterbi`; the report pools the re-tests of one CV
# group as a configuration of its own and pairs it with the argmax folds on the same sentences.
# CRF folds are skipped (they decode with their learned transitions already); done folds are not re-run.
#   bash experiments/tuning_budget/viterbi.sh logs/experiments/tuning_budget/cv
set -euo pipefail
cd "$(dirname "$0")/../.."
FOLDER=${1:?usage: viterbi.sh <folder of CV multiruns>}
PY=${PY:-.venv/bin/python}
DONE="$FOLDER/viterbi_done.txt"
touch "$DONE"
for run in "$FOLDER"/multiruns/*/[0-9]*-*/; do
  run=${run%/}
  [[ -f "$run/run.json" ]] || continue
  grep -qxF "$run" "$DONE" && continue
  tags=$($PY -c "import json, sys; r = json.load(open(sys.argv[1]))
ok = r.get('job_type') == 'train' and r.get('status') != 'failed' and not r['config']['module'].get('crf')
print(','.join([*r.get('tags', []), 'viterbi']) if ok else '')" "$run/run.json")
  if [[ -n "$tags" ]]; then
    # a failed re-test stops the script with its own error (not an empty grep)
    out=$($PY -m localize.evaluate run="$run" module.decoding=viterbi paths.log_dir="$FOLDER" logger=none \
      "tags=[$tags]" 2>&1) || { echo "$out" | tail -20; echo "viterbi.sh: the re-test of $run failed" >&2; exit 1; }
    grep '^\[localize\]' <<< "$out" || true
  fi
  echo "$run" >> "$DONE"
done
