#!/usr/bin/env bash
# Continual localization on the embedded Japanese NER corpus (conf/sequence/ner_types.yaml): stage 1 learns
# PERSON/LOCATION/ORGANIZATION from one half of the training sentences, stage 2 DATE/TIME/MONEY/PERCENT/
# ARTIFACT from the other half (names read as O there); the same 150 test sentences, each stage scored
# on its own types. One sequence per strategy and seed, then the table with CIs (summarize.py).
#   bash experiments/continual/run.sh                               (6 strategies x 1 seed, ≈ 55 min: README)
#   SEEDS="1 2 3" bash experiments/continual/run.sh
#   STRATEGIES="sequential replay" bash experiments/continual/run.sh
#   SEQUENCE=translation_locales bash experiments/continual/run.sh  (en->ja, zh, ko with Gemma-3 + LoRA)
#   VARIANTS="replay150=replay:strategy.replay_size=150" bash experiments/continual/run.sh
#     (a strategy at another setting, under its own name, reported beside the others: none is selected)
#   SHARE=sequential (the default; SHARE= for none): a strategy copies that strategy's finished zero-shot scores
#     and, where it trains the first stage the same way, that stage and its evaluations (share_from=, recorded)
# An interrupted sequence is resumed where it stopped when the script runs again.
set -euo pipefail
cd "$(dirname "$0")/../.."
SEQUENCE=${SEQUENCE:-ner_types}
SEEDS=${SEEDS:-1}
STRATEGIES=${STRATEGIES:-sequential replay l2sp ewc adapter_per_stage osf}
OUT=${OUT:-logs/experiments/continual}
SHARE=${SHARE-sequential}
PY=.venv/bin/python
finished() {  # the sequence's own status (its stages carry a "status" too, so a grep would match a stage's)
  $PY -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])).get("status") != "finished")' "$1/continual.json" \
    2>/dev/null
}
for seed in $SEEDS; do
  for s in $STRATEGIES; do
    dir="$OUT/$SEQUENCE/$s-s$seed"
    if finished "$dir"; then echo "done: $dir"; continue; fi
    extra=()
    # One LoRA per stage learns from 150 sentences: the sequence's 25 epochs (≈250 steps) may leave it all-O on
    # this corpus (experiments/full_vs_peft_cv: LoRA needs more steps), so it gets 40.
    if [ "$s" = adapter_per_stage ] && [ "$SEQUENCE" = ner_types ]; then
      extra=("sequence.train=['trainer.max_epochs=40','callbacks.early_stopping.patience=40']")
    fi
    src="$OUT/$SEQUENCE/$SHARE-s$seed"
    if [ -n "$SHARE" ] && [ "$s" != "$SHARE" ] && [ ${#extra[@]} -eq 0 ] && [ -f "$src/continual.json" ]; then
      extra=("share_from=$src")
    fi
    $PY -m localize.continual sequence="$SEQUENCE" strategy="$s" seed="$seed" hydra.run.dir="$dir" "${extra[@]}"
  done
  for v in ${VARIANTS:-}; do  # name=strategy:override,override
    name=${v%%=*}; rest=${v#*=}; s=${rest%%:*}; IFS=, read -r -a opts <<< "${rest#*:}"
    dir="$OUT/$SEQUENCE/$name-s$seed"
    if finished "$dir"; then echo "done: $dir"; continue; fi
    $PY -m localize.continual sequence="$SEQUENCE" strategy="$s" strategy.name="$name" "${opts[@]}" seed="$seed" \
      hydra.run.dir="$dir"
  done
done
$PY -m localize.report "$OUT/$SEQUENCE" --out "experiments/continual/results/$SEQUENCE"
