"""Where does a class-incremental sequence forget: in the encoder or in the head?

For each finished sequence dir, the first stage's model (its head, its scoring of the first stage's types) is
given the last stage's encoder (every weight but the task head; adapters merged), and scored on the first
stage's test set. If that recovers most of R[0][0], the encoder still carries what the first stage learned and
the forgetting is the head's (the later stage's data, where earlier types read as O, taught it "O").

    .venv/bin/python experiments/continual/probe_head.py logs/experiments/continual/ner_types/{sequential,osf}-s1
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

HEAD = ("classifier.", "crf.", "score.")  # the task head's parameter names (token classification)


def _f1(module) -> dict:
    import pytorch_lightning as pl

    from localize.runs import build_datamodule
    from localize.tracking.intervals import metric_intervals

    trainer = pl.Trainer(accelerator="cpu", precision="bf16-mixed", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.test(module, datamodule=build_datamodule(module.run_info), verbose=False)
    ci = metric_intervals([module.test_predictions()], ["f1"])["test/f1"]
    return {k: round(float(ci[k]), 3) for k in ("estimate", "low", "high")}


def probe(seq_dir: Path) -> dict:
    import torch

    from localize.models.weights import merge_adapter
    from localize.runs import load_run

    stages = sorted((seq_dir / "stages").iterdir())
    first, last = load_run(str(stages[0])), load_run(str(stages[-1]))
    own = _f1(first)
    body = {n: p for n, p in merge_adapter(last).named_parameters() if not n.startswith(HEAD)}
    target = merge_adapter(first)
    with torch.no_grad():
        for n, p in target.named_parameters():
            if not n.startswith(HEAD):
                p.copy_(body[n])
    return {"sequence": seq_dir.name, "first stage": own, "last encoder + first head": _f1(first)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sequences", nargs="+", type=Path)
    args = ap.parse_args()
    rows = [probe(d) for d in args.sequences]
    print("| sequence | first stage on its test (R[0][0]) | last stage's encoder + first stage's head |")
    print("|---|---|---|")
    for r in rows:
        a, b = r["first stage"], r["last encoder + first head"]
        print(f"| {r['sequence']} | {a['estimate']:.3f} [{a['low']:.3f}, {a['high']:.3f}] | "
              f"{b['estimate']:.3f} [{b['low']:.3f}, {b['high']:.3f}] |")


if __name__ == "__main__":
    main()
