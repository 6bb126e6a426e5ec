#!/usr/bin/env bash
# Label audit of the embedded zh news sentiment corpus (issue 17 item 1, classification): cleanlab's
# find_label_issues over 5-fold out-of-fold probabilities of the default sentiment recipe (e5-small, full FT
# with frozen word embeddings), with 10% of the documents given another label (data.label_noise=0.1).
# inews comes split into train/validation/test and an audit cross-validates one corpus, so the first N
# training documents are written to one JSONL first (ids kept) and audited with data.path=.
#   bash experiments/audit/zh_sentiment.sh          (N=1000: 5 folds of ~720 training documents, ~8 min)
#   SEED=2 CLEAN=1 bash experiments/audit/zh_sentiment.sh   (another draw of flips, and the corpus as shipped)
# An interrupted audit is resumed (its finished folds kept) when the script runs again.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-1000}
SEED=${SEED:-1}
OUT=${OUT:-logs/experiments/audit_zh}
PY=.venv/bin/python
mkdir -p "$OUT"
pool="$OUT/inews-train-$N.jsonl"
if [ ! -f "$pool" ]; then
  $PY - "$pool" "$N" <<'PYEOF'
import json, sys
from localize.config import compose
from localize.utils import build

dm = build(compose(["+locale=zh", "task=sentiment", "logger=none"]).data)
with open(sys.argv[1], "w", encoding="utf-8") as f:
    for ex in dm.splits["train"][: int(sys.argv[2])]:
        f.write(json.dumps({"id": ex["id"], "text": ex["text"], "label": ex["label"]}, ensure_ascii=False) + "\n")
PYEOF
fi
for noise in ${NOISE:-0.1} ${CLEAN:+null}; do
  dir="$OUT/sentiment-zh-noise$noise-s$SEED"
  if [ -f "$dir/audit.json" ]; then echo "done: $dir"; continue; fi
  $PY -m localize.audit +locale=zh task=sentiment data.path="$pool" data.label_noise="$noise" seed="$SEED" resume="$dir"
done
$PY experiments/audit/summarize.py "$OUT" > experiments/audit/results_zh.md
cat experiments/audit/results_zh.md
