#!/usr/bin/env bash
# bash experiments/transfer/run_offline.sh      (EPOCHS=10 MODEL=e5_small ADAPTER=lora by default)
# Offline transfer demo end to end: build the two datasets, train one run per dataset, evaluate
# every run on every dataset -> logs/transfer/offline/{matrix.csv,results.csv,heatmap.png}.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
EPOCHS=${EPOCHS:-10}
MODEL=${MODEL:-e5_small}
ADAPTER=${ADAPTER:-lora}
# One label set for both rows (a rare type may be missing from one half's training split).
LABELS="O,B-ARTIFACT,I-ARTIFACT,B-DATE,I-DATE,B-LOCATION,I-LOCATION,B-MONEY,I-MONEY,B-ORGANIZATION,I-ORGANIZATION,B-PERCENT,I-PERCENT,B-PERSON,I-PERSON,B-TIME,I-TIME"

$PY experiments/transfer/make_offline_data.py
for name in ja_words ja_chars; do
  file=experiments/transfer/data/$name.conll
  [ -f "$file" ] || file=experiments/transfer/data/$name.jsonl
  if [ ! -f "logs/transfer/runs/$name/run.json" ]; then
    $PY -m localize.train +locale=ja task=ner model=$MODEL adapter=$ADAPTER logger=csv \
      data.path=$file "data.split_sizes=[0.8,0.1,0.1]" "data.labels=[$LABELS]" \
      trainer.max_epochs=$EPOCHS run_name=transfer-$name-$MODEL-$ADAPTER hydra.run.dir=logs/transfer/runs/$name
  fi
done
$PY experiments/transfer/transfer.py experiments/transfer/offline.yaml
