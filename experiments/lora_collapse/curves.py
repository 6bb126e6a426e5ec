"""Per-epoch dev curves of every run under a log dir (from each run's CSV log), one table per run:
dev span F1, dev loss, dev token accuracy, the last logged train loss of the epoch, and the body lr.

    python experiments/lora_collapse/curves.py logs/experiments/lora_collapse
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

SHOWN = ("adapter.lr", "module.warmup_ratio", "module.head_warmup_ratio", "data.batch_size")


def run_table(run: Path) -> str:
    record = json.loads((run / "run.json").read_text())
    config = OmegaConf.create(record["config"])
    metrics = pd.read_csv(next(run.glob("csv/**/metrics.csv")))
    val = metrics.dropna(subset=["val/f1"]).groupby("epoch").last()
    train = metrics.dropna(subset=["train/loss"]).groupby("epoch").last()
    # The lr monitor logs on rows of its own: each epoch's last logged body lr.
    lr_of = metrics.dropna(subset=["lr-AdamW/body"]) if "lr-AdamW/body" in metrics else metrics.iloc[:0]
    lr_of = lr_of.assign(epoch=lr_of["step"].map(lambda s: train.index[(train["step"] >= s).argmax()]
                                                 if len(train) and (train["step"] >= s).any() else None))
    setting = ", ".join(f"{k}={OmegaConf.select(config, k)}" for k in SHOWN)
    lines = [f"### {run.parent.name}/{run.name}", "", f"{setting}; status `{record.get('status')}`, test F1 "
             f"{record['metrics'].get('test/f1', float('nan')):.3f}", "",
             "| epoch | dev F1 | dev loss | dev token acc. | train loss (last step) | body lr (last step) |",
             "|---|---|---|---|---|---|"]
    for epoch, row in val.iterrows():
        tr = train.loc[epoch] if epoch in train.index else None
        loss = f"{tr['train/loss']:.3f}" if tr is not None else "–"
        lrs = lr_of[lr_of["epoch"] == epoch]["lr-AdamW/body"]
        lr = f"{lrs.iloc[-1]:.2e}" if len(lrs) else "–"
        lines.append(f"| {int(epoch)} | {row['val/f1']:.3f} | {row['val/loss']:.3f} | {row['val/accuracy']:.3f} "
                     f"| {loss} | {lr} |")
    return "\n".join(lines)


def main(folder: str) -> int:
    runs = sorted(p.parent for p in Path(folder).glob("**/run.json"))
    if not runs:
        sys.exit(f"no run.json under {folder}: run experiments/lora_collapse/run.sh first")
    print("\n\n".join(run_table(r) for r in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
