"""Where a training step's time goes (issue 20 item 2): one e5-small NER step profiled, and the AdamW variants
that keep its semantics timed side by side.

    python benchmarks/profile_step.py                                # full and frozen-emb FT, bf16, 20 steps
    python benchmarks/profile_step.py --adapters full --precision 32-true --steps 10
    python benchmarks/profile_step.py --override model=tiny_random --steps 2   (the plumbing only)

Each adapter is built from localize's own config (``benchmarks/ner_bench.py``'s ``shared_setup``: the same
data, model, parameter groups and warm-up as ``localize.train``), and trained by the loop Lightning runs
(forward + loss under the precision's autocast, backward, gradient clipping, optimizer step, zero_grad) on
real length-grouped batches. The phases are ``record_function`` ranges, so the profile splits the step into
forward / backward / clip / optimizer, and lists the operators that take the most self time.

Then every AdamW implementation torch offers on this device is timed on the same batches from the same start
weights: ``for-loop`` (torch's CPU default), ``foreach`` (one multi-tensor kernel per op), ``fused`` (one
kernel for the whole update). They compute the same update (up to float rounding; the max weight difference
after the timed steps is printed); ``module.optimizer.foreach=true`` / ``module.optimizer.fused=true`` picks
one in a real run. Writes ``benchmarks/results/profile-<date>.md`` (and prints it).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ner_bench import shared_setup  # noqa: E402  (same setup as the bench)

from localize.models.module import param_groups  # noqa: E402

PHASES = ("forward", "backward", "clip", "optimizer", "zero_grad")
VARIANTS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
KEYS = ("input_ids", "attention_mask", "labels")


def batches(dm, n: int) -> list[dict]:
    """The first ``n`` training batches (length-grouped, as localize trains), cycled if the epoch is shorter."""
    out: list[dict] = []
    while len(out) < n:
        out += [{k: b[k] for k in KEYS} for b in dm.train_dataloader()][: n - len(out)]
    return out


def step(model, opt, batch, clip: float, cast) -> None:
    with record_function("forward"), cast():
        loss = model(**batch).loss
    with record_function("backward"):
        loss.backward()
    with record_function("clip"):
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    with record_function("optimizer"):
        opt.step()
    with record_function("zero_grad"):
        opt.zero_grad(set_to_none=True)


def adamw(cfg, model, **kind):
    """localize's AdamW parameter groups at the peak lr (the schedule does not change the step's cost)."""
    groups = param_groups(model, cfg.adapter.lr, cfg.adapter.head_lr, cfg.module.optimizer.weight_decay)
    return torch.optim.AdamW(groups, **kind)


def profile_adapter(adapter: str, precision: str, steps: int, overrides: list[str]) -> dict:
    cfg, dm, module = shared_setup(adapter, 1, 1, [*overrides, f"trainer.precision={precision}"])
    model = module.model.train()
    clip = float(cfg.trainer.gradient_clip_val or 0) or float("inf")
    bf16 = precision.startswith("bf16")
    cast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    work = batches(dm, steps + 2)
    tokens = sum(int(b["attention_mask"].sum()) for b in work[2:])
    start = copy.deepcopy(model.state_dict())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    opt = adamw(cfg, model)
    for b in work[:2]:  # warm-up: allocator, autocast caches, optimizer state
        step(model, opt, b, clip, cast)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in work[2:]:
            step(model, opt, b, clip, cast)
    events = prof.key_averages()
    phase_ms = {e.key: e.cpu_time_total / 1e3 / steps for e in events if e.key in PHASES}
    ops = sorted((e for e in events if e.key not in PHASES and not e.key.startswith("ProfilerStep")),
                 key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    total_self = sum(e.self_cpu_time_total for e in events) or 1.0
    top = [(e.key, e.self_cpu_time_total / 1e3 / steps, 100 * e.self_cpu_time_total / total_self, e.count // steps)
           for e in ops]

    timed, weights = {}, {}
    for name, kind in VARIANTS.items():
        model.load_state_dict(start)
        torch.manual_seed(0)  # the same dropout masks for every variant
        opt = adamw(cfg, model, **kind)
        try:
            for b in work[:2]:
                step(model, opt, b, clip, cast)
            per = []
            for b in work[2:]:
                t = time.perf_counter()
                step(model, opt, b, clip, cast)
                per.append(time.perf_counter() - t)
            timed[name] = statistics.median(per)
            weights[name] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        except (RuntimeError, TypeError) as err:  # e.g. fused AdamW not built for this device/dtype
            timed[name] = f"n/a ({str(err).splitlines()[0][:80]})"
    ref = weights.get("for-loop")
    drift = {n: max(float((w[k].float() - ref[k].float()).abs().max()) for k in ref) for n, w in weights.items()
             if ref is not None}
    return {"adapter": adapter, "precision": precision, "steps": steps, "trainable": trainable,
            "tokens_per_step": tokens / steps, "phase_ms": phase_ms, "top": top, "timed": timed, "drift": drift}


def markdown(results: list[dict], meta: dict) -> str:
    lines = [f"# Training-step profile ({meta['date']})", "",
             f"`{meta['command']}` — torch {meta['torch']}, {meta['threads']} threads, "
             f"{meta['steps']} profiled steps after 2 warm-up steps, e5-small NER, batch as configured.", ""]
    for r in results:
        ms = r["phase_ms"]
        total = sum(ms.get(p, 0.0) for p in PHASES) or 1.0
        lines += [f"## {r['adapter']}, {r['precision']} ({r['trainable'] / 1e6:.1f}M trainable parameters, "
                  f"{r['tokens_per_step']:.0f} non-pad tokens per step)", "",
                  "| phase | ms per step | share |", "|---|---|---|"]
        lines += [f"| {p} | {ms.get(p, 0.0):.1f} | {100 * ms.get(p, 0.0) / total:.0f}% |" for p in PHASES]
        lines += ["", "| operator (self time) | ms per step | share of all self time | calls per step |",
                  "|---|---|---|---|"]
        lines += [f"| `{k}` | {t:.1f} | {s:.1f}% | {c} |" for k, t, s, c in r["top"]]
        lines += ["", "| AdamW implementation | median step (s) | vs for-loop | max weight difference vs for-loop |",
                  "|---|---|---|---|"]
        base = r["timed"].get("for-loop")
        for name, t in r["timed"].items():
            if isinstance(t, float):
                ratio = f"{base / t:.2f}×" if isinstance(base, float) else "n/a"
                lines.append(f"| {name} | {t:.3f} | {ratio} | {r['drift'].get(name, float('nan')):.2e} |")
            else:
                lines.append(f"| {name} | {t} | | |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--adapters", default="full,full_frozen_emb")
    ap.add_argument("--precision", default="bf16-mixed")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--override", action="append", default=[], help="extra localize overrides (repeatable)")
    ap.add_argument("--out", default=None, help="markdown file (default benchmarks/results/profile-<date>.md)")
    args = ap.parse_args(argv)
    results = [profile_adapter(a, args.precision, args.steps, args.override) for a in args.adapters.split(",")]
    meta = {"date": dt.date.today().isoformat(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "steps": args.steps, "command": "python benchmarks/profile_step.py " + " ".join(argv or sys.argv[1:])}
    text = markdown(results, meta)
    out = Path(args.out or Path(__file__).parent / "results" / f"profile-{meta['date']}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
