#!/usr/bin/env bash
# Re-test every trained CV fold under FOLDER with the other decoding (issue 19 item 7): an argmax run with
# constrained Viterbi (logits decoded as valid IOB2, localize.models.decoding), a Viterbi run with argmax;
# the same checkpoint, the same test fold. Each re-test is a `localize.evaluate` record tagged like its run
# plus the decoding (`viterbi` or `argmax`); the report pools the re-tests of one CV group as a
# configuration of its own and pairs it with the folds it re-tests on the same sentences.
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
  # the other decoding than the run's own (viterbi is the NER default since session 13; argmax before)
  read -r other tags < <($PY -c "import json, sys; r = json.load(open(sys.argv[1])); m = r['config']['module']
ok = r.get('job_type') == 'train' and r.get('status') != 'failed' and not m.get('crf')
other = 'argmax' if m.get('decoding') == 'viterbi' else 'viterbi'
print(other, ','.join([*r.get('tags', []), other]) if ok else '')" "$run/run.json")
  if [[ -n "$tags" ]]; then
    # a failed re-test stops the script with its own error (not an empty grep)
    out=$($PY -m localize.evaluate run="$run" module.decoding="$other" paths.log_dir="$FOLDER" logger=none \
      "tags=[$tags]" 2>&1) || { echo "$out" | tail -20; echo "viterbi.sh: the re-test of $run failed" >&2; exit 1; }
    grep '^\[localize\]' <<< "$out" || true
  fi
  echo "$run" >> "$DONE"
done
