"""Speed of the training opt-ins and of DDP on CPU, side by side in one run (issue 20 items 2, 3 and 6).

    python benchmarks/opt_ins.py                       # every row, 2 epochs each, then the table
    python benchmarks/opt_ins.py --rows frozen_emb,compile --epochs 3

Each NER row is the default Japanese NER recipe (``python -m localize.train +locale=ja task=ner``) with one change,
run as its own process, one after another (the CPU must be otherwise quiet: two jobs on 2 cores slow each
other far more than 2x), seed 1, ``test=false``: speed only. The F1 of an opt-in that changes the update is a
full run's (benchmarks/RESULTS.md). The table gives each epoch's wall time (a compiled model's first epoch
carries its compilation), non-pad training tokens/s over all ranks, and the ratio to the row's reference.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

from localize.tracking.record import read_record

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = ["+locale=ja", "logger=none", "seed=1"]
NER = ["task=ner", "test=false"]
# Gemma-3-270M + LoRA on 160 en→ja pairs (10 steps) and one generation pass over 32 dev strings (KV cache,
# batched, left-padded prompts): training and generated tokens/s. The task default (1,000 pairs) is 63 steps.
MT = ["task=translation", "adapter=lora", "data.max_train_examples=160", "data.max_eval_examples=32",
      "~task.callbacks.zeroshot", "test=false", "trainer.num_sanity_val_steps=0", "trainer.max_epochs=1"]
# name: (overrides, the row it is compared with)
ROWS = {
    "frozen_emb": (NER, None),
    # The kernels and the precision of the default recipe (auto: bf16-mixed where the CPU has native bf16).
    "frozen_emb_foreach_adamw": (NER + ["module.optimizer.fused=false", "+module.optimizer.foreach=true"], "frozen_emb"),
    "frozen_emb_forloop_adamw": (NER + ["module.optimizer.fused=null"], "frozen_emb"),
    "frozen_emb_fp32": (NER + ["trainer.precision=32-true"], "frozen_emb"),
    "compile": (NER + ["module.compile=true"], "frozen_emb"),
    "ddp_2_ranks": (NER + ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"], "frozen_emb"),
    "full": (NER + ["adapter=full"], None),
    "full_forloop_adamw": (NER + ["adapter=full", "module.optimizer.fused=null"], "full"),  # torch's CPU default
    "full_sparse_embeddings": (NER + ["adapter=full", "module.sparse_embeddings=true"], "full"),
    "translation_lora": (MT, None),
}


def run(name: str, overrides: list[str], epochs: int, out: str, repeat: int | None = None) -> dict:
    run_dir = os.path.join(out, name if repeat is None else f"{name}-r{repeat}")
    own = any(o.startswith("trainer.max_epochs=") for o in overrides)  # a row may fix its own budget
    cmd = [sys.executable, "-m", "localize.train", *BASE, *([] if own else [f"trainer.max_epochs={epochs}"]), *overrides,
           f"hydra.run.dir={run_dir}"]
    start = time.perf_counter()
    with open(run_dir + ".log", "w") as log:
        rc = subprocess.call(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    rec = read_record(run_dir)
    if rc != 0 or rec is None:
        print(f"[opt_ins] {name} failed (rc {rc}): see {run_dir}.log", file=sys.stderr)
        return {"name": name, "failed": True, "wall_s": wall}
    perf, machine = rec.get("perf") or {}, rec.get("machine") or {}
    world = int(machine.get("world_size") or 1)
    # Each rank counts the tokens of its own shard; rank 0's count times the ranks is the job's.
    return {"name": name, "overrides": overrides, "wall_s": wall, "world_size": world,
            "threads": machine.get("torch_threads"), "precision": machine.get("precision"),
            "epoch_s": perf.get("epoch_s"), "tokens_per_s": (perf.get("train_tokens_per_s") or 0.0) * world,
            "generated_per_s": ((rec.get("results") or {}).get("generation_speed") or {}).get("new_tokens_per_s")}


def median_row(runs: list[dict]) -> dict:
    """One row's interleaved repeats as its median run (by tokens/s), with every repeat's tokens/s beside it."""
    done = sorted((r for r in runs if not r.get("failed")), key=lambda r: r["tokens_per_s"])
    if not done:
        return runs[0]
    return done[(len(done) - 1) // 2] | {"repeats": [r["tokens_per_s"] for r in runs if not r.get("failed")]}


def table(rows: list[dict]) -> str:
    by = {r["name"]: r for r in rows}
    out = ["| row | overrides | precision | ranks × threads | epoch wall s | train tokens/s (non-pad, all ranks) "
           "| vs | generated tokens/s | process wall s |", "|---|---|---|---|---|---:|---|---:|---:|"]
    for r in rows:
        if r.get("failed"):
            out.append(f"| {r['name']} | failed | | | | | | | {r['wall_s']:.0f} |")
            continue
        ref = by.get(ROWS[r["name"]][1] or "")
        vs = (f"{r['tokens_per_s'] / ref['tokens_per_s']:.2f}× {ref['name']}"
              if ref and not ref.get("failed") and ref["tokens_per_s"] else "")
        epochs_s = " / ".join(f"{t:.1f}" for t in r["epoch_s"] or [])
        spread = f" ({' / '.join(f'{t:.0f}' for t in r['repeats'])})" if len(r.get("repeats", [])) > 1 else ""
        out.append(f"| {r['name']} | `{' '.join(r['overrides']) or '(default)'}` | {r['precision']} | "
                   f"{r['world_size']} × {r['threads']} | {epochs_s} | {r['tokens_per_s']:.0f}{spread} | {vs} | "
                   f"{'' if r.get('generated_per_s') is None else format(r['generated_per_s'], '.1f')} | {r['wall_s']:.0f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {list(ROWS)}")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1,
                    help="interleaved rounds (every row once per round); the table gives each row's median run")
    ap.add_argument("--out", default=None, help="run dirs (default logs/benchmarks/opt_ins/<time>)")
    args = ap.parse_args()
    names = [n for n in args.rows.split(",") if n]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        sys.exit(f"--rows: unknown {unknown}; choose from {','.join(ROWS)}")
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out = args.out or os.path.join(ROOT, "logs", "benchmarks", "opt_ins", stamp)
    os.makedirs(out, exist_ok=True)
    rounds = [[run(n, ROWS[n][0], args.epochs, out, i if args.repeats > 1 else None) for n in names]
              for i in range(args.repeats)]  # interleaved: a drift in the machine's speed hits every row alike
    rows = [median_row([r[j] for r in rounds]) for j in range(len(names))]
    text = (f"# Opt-ins and DDP on CPU ({stamp})\n\n`python benchmarks/opt_ins.py --rows {','.join(names)} "
            f"--epochs {args.epochs} --repeats {args.repeats}`: the default NER recipe, {args.epochs} epochs per row, "
            f"seed 1, one row at a time, {args.repeats} interleaved round(s); tokens/s is the median run's, every "
            f"round's in brackets.\n\n{table(rows)}\n")
    os.makedirs(os.path.join(ROOT, "benchmarks", "results"), exist_ok=True)
    path = os.path.join(ROOT, "benchmarks", "results", f"opt_ins-{stamp}.md")
    with open(path, "w") as f:
        f.write(text)
    with open(os.path.join(out, "rows.json"), "w") as f:
        json.dump(rows, f, indent=2)
    print(text + f"\n[opt_ins] {path}")


if __name__ == "__main__":
    main()
