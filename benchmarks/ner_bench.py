"""Japanese NER training benchmark: localize vs the Hugging Face Trainer vs a raw PyTorch loop, at fp32 and at best.

    python benchmarks/ner_bench.py                      # = make bench: full (2 epochs) + LoRA (10), 3 repeats
    python benchmarks/ner_bench.py --adapters lora --repeats 1 --epochs 1 --systems localize,trainer
    python benchmarks/ner_bench.py --adapters full:2,lora:10     # epochs per adapter

Every system trains the same model (embedded e5-small) on the same seeded 400/50/50 split of the embedded
corpus, with the same features (localize's word-boundary-aware alignment), optimiser parameter groups, warm-up,
gradient clipping, batch size, epochs and seed, scored by the same word-level strict span F1. Only the training
machinery and the precision differ; every system sets its precision explicitly (localize's default would pick
bf16 on a CPU with native bf16):

- ``localize`` / ``localize_bf16``: ``python -m localize.train`` as users run it (length-grouped batches,
  Lightning) with ``trainer.precision=32-true`` / ``bf16-mixed``.
- ``trainer``: ``AutoModelForTokenClassification`` + ``DataCollatorForTokenClassification`` + ``Trainer``
  (random batches, fp32: the ``run_ner.py`` defaults), fed localize's aligned features.
- ``trainer_best``: the same Trainer at its best: length-grouped sampling and ``bf16=True``.
- ``raw`` / ``raw_bf16``: a minimal PyTorch loop over localize's own data loader (the overhead baseline);
  ``raw_bf16`` runs forward+loss under ``torch.autocast("cpu", dtype=torch.bfloat16)``, fp32 master weights.
- ``textbook``: the Trainer recipe (fp32, one full-FT run) with its own ``is_split_into_words=True`` features
  (labels on the first piece of each word, for Japanese often a bare ``▁``): shows why alignment matters.

Ratios of median tokens/s, like for like: localize ÷ trainer and ÷ raw (fp32); localize_bf16 ÷ trainer_best
(both at their best) and ÷ raw_bf16.

Roofline: the driver first times this machine's fp32 and bf16 matmul peaks (``--matmul-n`` square, warm-up
then best of 5, 2n³ FLOP), then per adapter counts training FLOPs per token with ``FlopCounterMode`` on one
forward+backward of a real training batch (attention included; LoRA's frozen weights get no weight gradients)
over its B×T positions, pads included: a pad costs what a token costs, so padding shows up as lost MFU, not as
work. Each row: GFLOP/s = FLOPs/token × non-pad tokens/s, and MFU against both peaks.

Each job runs in its own process (clean peak RSS); repeats are interleaved so drifting machine load
hits every system alike. Validation and checkpointing are off in every system: the timed work is
training only. Results go to ``benchmarks/results/<date>/`` and ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import inspect
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = ("localize", "localize_bf16", "trainer", "trainer_best", "raw", "raw_bf16", "textbook")
PRECISION = {s: "bf16-mixed" if s.endswith(("_bf16", "_best")) else "32-true" for s in SYSTEMS}
# Each localize row over the anchors it is judged against, like for like (numerator, anchor).
RATIOS = (("localize", "trainer"), ("localize", "raw"),
          ("localize_bf16", "trainer_best"), ("localize_bf16", "raw_bf16"))
# The lightest settings that still exercise a realistic run; no W&B / CSV logging in any system.
COMMON = ["+locale=ja", "task=ner", "logger=none"]


# ---------------------------------------------------------------------------------------------- jobs
def shared_setup(adapter: str, epochs: int, seed: int, overrides: list[str]):
    """Datamodule + LightningModule built from localize's own config (same data, model, adapter)."""
    import pytorch_lightning as pl

    from localize.config import compose
    from localize.utils import build

    cfg = compose([*COMMON, f"adapter={adapter}", f"seed={seed}", f"trainer.max_epochs={epochs}", *overrides])
    pl.seed_everything(seed, workers=True)
    dm = build(cfg.data)
    dm.setup("fit")
    dm.setup("test")
    module = build(cfg.module, **dm.module_kwargs())
    return cfg, dm, module


def optimizer_and_schedule(cfg, model, steps: int):
    import torch
    from transformers import get_linear_schedule_with_warmup

    from localize.models.module import param_groups

    groups = param_groups(model, cfg.adapter.lr, cfg.adapter.head_lr, cfg.module.optimizer.weight_decay)
    opt = torch.optim.AdamW(groups, fused=cfg.module.optimizer.get("fused"))  # localize's AdamW kernel, in every system
    return opt, get_linear_schedule_with_warmup(opt, int(cfg.module.warmup_ratio * steps), steps)


def score(model, dm, loader=None) -> float:
    """Word-level strict span F1 on test — the scorer localize's test_step uses."""
    import torch

    from localize.models.decoding import argmax_tags
    from localize.models.token_cls import b_to_i_ids
    from localize.tracking.metrics import SpanF1

    metric, b_to_i = SpanF1(dict(enumerate(dm.label_names))), b_to_i_ids(dm.label_names)
    model.eval()
    with torch.inference_mode():
        for batch in loader or dm.test_dataloader():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            metric.update(argmax_tags(logits, batch["word_index"], b_to_i), batch["word_labels"], batch["index"])
    return float(metric.compute()["f1"])


def train_tokens(ds) -> int:  # non-pad tokens of one pass over an encoded training set
    return sum(sum(m) for m in ds["attention_mask"])


def job_localize(system: str, adapter: str, epochs: int, seed: int, workdir: Path, overrides: list[str]):
    """The real entry point, in a subprocess; figures (and the precision it ran) come from its run record."""
    cmd = [sys.executable, "-m", "localize.train", *COMMON, f"adapter={adapter}", f"seed={seed}",
           f"trainer.max_epochs={epochs}", "+trainer.limit_val_batches=0", "callbacks.model_checkpoint=null",
           "+trainer.enable_checkpointing=false",  # else Lightning adds its own (full FT: 9 s per epoch, untimed)
           "callbacks.early_stopping=null", f"paths.log_dir={workdir}", "run_name=bench", *overrides,
           f"trainer.precision={PRECISION[system]}"]  # last: the system's name decides, never the default
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        raise RuntimeError(f"localize.train failed:\n{proc.stderr[-3000:]}")
    record = json.loads(next(workdir.rglob("run.json")).read_text())
    perf = record["perf"]
    return {"train_s": perf["s_per_epoch"] * perf["epochs"], "tokens": perf["train_tokens"],
            "peak_rss_mb": perf["peak_rss_mb"], "test_f1": record["metrics"]["test/f1"],
            "padding_fraction": record["data"]["padding_fraction"]["grouped"],
            "precision": record["machine"]["precision"]}


def job_raw(system: str, adapter: str, epochs: int, seed: int, workdir: Path, overrides: list[str]):
    import torch

    cfg, dm, module = shared_setup(adapter, epochs, seed, overrides)
    model, loader = module.model, dm.train_dataloader()
    opt, sched = optimizer_and_schedule(cfg, model, epochs * len(loader))
    keys = ("input_ids", "attention_mask", "labels")
    bf16 = PRECISION[system] == "bf16-mixed"  # what Lightning's bf16-mixed does: autocast forward+loss only
    cast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    model.train()
    start = time.perf_counter()
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)
        for batch in loader:
            with cast():
                loss = model(**{k: batch[k] for k in keys}).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.gradient_clip_val)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    train_s = time.perf_counter() - start
    return {"train_s": train_s, "tokens": epochs * train_tokens(dm.encoded["train"]), "test_f1": score(model, dm)}


def _hf_trainer(cfg, model, train_ds, collator, epochs: int, seed: int, workdir: Path, best: bool = False):
    """Train with the HF Trainer; (seconds in epochs, the precision its accelerator ran)."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class Timer(TrainerCallback):
        train_s = 0.0

        def on_epoch_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kw):
            Timer.train_s += time.perf_counter() - self.t0

    steps = epochs * math.ceil(len(train_ds) / cfg.data.batch_size)
    # transformers 5 replaced group_by_length=True with train_sampling_strategy="group_by_length".
    new = "train_sampling_strategy" in inspect.signature(TrainingArguments).parameters
    grouped = ({"train_sampling_strategy": "group_by_length"} if new else {"group_by_length": True}) if best else {}
    args = TrainingArguments(
        output_dir=str(workdir), per_device_train_batch_size=cfg.data.batch_size, num_train_epochs=epochs,
        max_grad_norm=cfg.trainer.gradient_clip_val, seed=seed, data_seed=seed, eval_strategy="no",
        save_strategy="no", report_to="none", logging_steps=cfg.trainer.log_every_n_steps,
        dataloader_num_workers=0, use_cpu=True, disable_tqdm=True, bf16=best, **grouped,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, data_collator=collator,
                      optimizers=optimizer_and_schedule(cfg, model, steps), callbacks=[Timer()])
    trainer.train()
    mixed = trainer.accelerator.mixed_precision  # read back, not assumed from the flag
    return Timer.train_s, {"no": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}.get(mixed, mixed)


def job_trainer(system: str, adapter: str, epochs: int, seed: int, workdir: Path, overrides: list[str]):
    from transformers import DataCollatorForTokenClassification

    cfg, dm, module = shared_setup(adapter, epochs, seed, overrides)
    train_ds = dm.encoded["train"].select_columns(["input_ids", "attention_mask", "labels"])
    collator = DataCollatorForTokenClassification(dm.tokenizer)
    train_s, precision = _hf_trainer(cfg, module.model, train_ds, collator, epochs, seed, workdir,
                                     best=system == "trainer_best")
    return {"train_s": train_s, "tokens": epochs * train_tokens(dm.encoded["train"]), "precision": precision,
            "test_f1": score(module.model, dm)}


def job_textbook(system: str, adapter: str, epochs: int, seed: int, workdir: Path, overrides: list[str]):
    """The textbook recipe: ``is_split_into_words=True``, label on each word's first token."""
    import datasets
    from torch.utils.data import DataLoader
    from transformers import DataCollatorForTokenClassification

    from localize.data.collate import PadCollator
    from localize.data.datamodule import normalize

    cfg, dm, module = shared_setup(adapter, epochs, seed, overrides)
    label2id = {t: i for i, t in enumerate(dm.label_names)}

    def encode(ex, idx):
        words = [normalize(w, dm.normalization) for w in ex["tokens"]]
        enc = dm.tokenizer(words, is_split_into_words=True, truncation=True, max_length=cfg.data.max_length)
        # Each word's first piece (reversed: the first position is the one left in the dict).
        first = {w: pos for pos, w in reversed(list(enumerate(enc.word_ids()))) if w is not None}
        label_at = {pos: label2id[ex["tags"][w]] for w, pos in first.items()}
        labels = [label_at.get(pos, -100) for pos in range(len(enc["input_ids"]))]
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels,
                "word_index": [first.get(w, -1) for w in range(len(words))],
                "word_labels": [label2id[t] for t in ex["tags"]], "index": idx}

    enc = {name: datasets.Dataset.from_list(dm.splits[name]).map(encode, with_indices=True)
           for name in ("train", "test")}
    train_ds = enc["train"].select_columns(["input_ids", "attention_mask", "labels"])
    train_s, precision = _hf_trainer(cfg, module.model, train_ds, DataCollatorForTokenClassification(dm.tokenizer),
                                     epochs, seed, workdir)
    test_cols = ["input_ids", "attention_mask", "word_index", "word_labels", "index"]
    test = DataLoader(enc["test"].select_columns(test_cols), batch_size=cfg.data.eval_batch_size,
                      collate_fn=PadCollator(dm.tokenizer.pad_token_id))
    return {"train_s": train_s, "tokens": epochs * train_tokens(enc["train"]), "precision": precision,
            "test_f1": score(module.model, dm, test)}


def job_flops(system: str, adapter: str, epochs: int, seed: int, workdir: Path, overrides: list[str]):
    """FLOPs per token of one training step (see the module docstring). One batch: FlopCounterMode is ~1 ms/op."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    _, dm, module = shared_setup(adapter, 1, seed, overrides)
    batch = next(iter(dm.train_dataloader()))
    with FlopCounterMode(display=False) as counter:
        module.model.train()(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}).loss.backward()
    mask = batch["attention_mask"]
    return {"flops_per_token": counter.get_total_flops() / mask.numel(), "probe_shape": list(mask.shape),
            "probe_padding": 1 - float(mask.float().mean())}


JOBS = {"localize": job_localize, "localize_bf16": job_localize, "trainer": job_trainer, "trainer_best": job_trainer,
        "raw": job_raw, "raw_bf16": job_raw, "textbook": job_textbook, "flops": job_flops}


def run_job(args) -> None:
    from localize.utils import quiet_libraries

    quiet_libraries()
    (workdir := Path(args.workdir)).mkdir(parents=True, exist_ok=True)
    out = JOBS[args.system](args.system, args.adapter, args.epochs, args.seed, workdir, args.override)
    if args.system != "flops":
        # localize reports its own process's peak; the others are this process.
        out.setdefault("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        out.setdefault("precision", PRECISION[args.system])
        out.update(system=args.system, adapter=args.adapter, epochs=args.epochs, seed=args.seed,
                   tokens_per_s=out["tokens"] / out["train_s"], s_per_epoch=out["train_s"] / args.epochs)
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, args.out)  # a crashed job leaves no result that looks valid


# -------------------------------------------------------------------------------------------- driver
def matmul_peaks(n: int = 2048, tries: int = 5) -> dict[str, float]:
    """GFLOP/s of this machine's best n×n matmul (2n³ FLOP) in fp32 and bf16: warm-up, then best of ``tries``."""
    import torch

    peaks = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        peaks[name] = 2 * n**3 / min(timeit.repeat(lambda: a @ b, number=1, repeat=tries + 1)[1:]) / 1e9  # noqa: B023
    return peaks


def roofline(flops_per_token: float, tokens_per_s: float, peaks: dict[str, float]) -> dict[str, float]:
    """Achieved GFLOP/s and model-FLOPs utilisation against each peak (GFLOP/s)."""
    gflops = flops_per_token * tokens_per_s / 1e9
    return {"gflop_s": gflops, **{f"mfu_{k}": gflops / v for k, v in peaks.items()}}


def summarise(rows: list[dict[str, Any]], flops: dict[str, float] | None = None,
              peaks: dict[str, float] | None = None) -> list[dict[str, Any]]:
    table = []
    for adapter in dict.fromkeys(r["adapter"] for r in rows):
        med = {}
        for system in SYSTEMS:
            runs = [r for r in rows if r["adapter"] == adapter and r["system"] == system]
            if not runs:
                continue
            m = med[system] = {k: statistics.median(r[k] for r in runs)
                               for k in ("tokens_per_s", "s_per_epoch", "peak_rss_mb", "test_f1")}
            m.update(precision=runs[0].get("precision", PRECISION[system]), epochs=runs[0]["epochs"],
                     f1_all=[round(r["test_f1"], 3) for r in runs], n=len(runs))
            if flops and peaks and adapter in flops:
                m.update(roofline(flops[adapter], m["tokens_per_s"], peaks))
        for num, den in RATIOS:
            if num in med and den in med:
                med[num][f"speed_vs_{den}"] = med[num]["tokens_per_s"] / med[den]["tokens_per_s"]
        table += [{"adapter": adapter, "system": system, **m} for system, m in med.items()]
    return table


def markdown(table: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    peaks, fpt = meta.get("peaks", {}), meta.get("flops_per_token", {})
    lines = [
        "# Benchmark: localize vs Hugging Face Trainer vs raw PyTorch loop (Japanese NER)",
        "",
        "Generated by `make bench` (`python benchmarks/ner_bench.py " + " ".join(meta["argv"]) + "`) on "
        f"{meta['date']}. Do not edit by hand: rerun after any change that could move these numbers.",
        "",
        f"- Machine: {meta['machine']}; versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- Work: e5-small (embedded), hironsan 400/50/50 seeded split, batch 16, epochs per row, "
        f"seed {meta['seed']}, medians over {meta['repeats']} interleaved repeat(s); validation and "
        "checkpointing off in every system; test F1 = strict word-level span F1, same scorer for all.",
        f"- Padding share of localize's length-grouped batches: {meta.get('padding', 'n/a')}",
        f"- Roofline: matmul peak {', '.join(f'{k} {v:.0f}' for k, v in peaks.items()) or 'n/a'} GFLOP/s "
        f"({meta.get('matmul_n')}² square, best of 5); training FLOPs per token (fwd+bwd, FlopCounterMode): "
        + (", ".join(f"{k} {v:.3g}" for k, v in fpt.items()) or "n/a") + ". MFU = GFLOP/s ÷ peak.",
        "- Ratios of median tokens/s: *vs Trainer* is localize ÷ `trainer` (fp32 defaults) and localize_bf16 ÷ "
        "`trainer_best` (bf16 + length-grouped: each at its best); *vs raw* is ÷ `raw` / ÷ `raw_bf16` "
        "(same precision).",
        "",
        "| adapter | system | precision | epochs | train tokens/s (non-pad) | s/epoch | GFLOP/s "
        "| MFU (fp32 / bf16 peak) | peak RSS MB | test F1 (median; runs) | vs Trainer | vs raw (same precision) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in table:
        ratio = lambda *ks: next((f"{r[k]:.2f}×" for k in ks if k in r), "")  # noqa: E731
        mfu = f"{r['mfu_fp32']:.1%} / {r['mfu_bf16']:.1%}" if "mfu_fp32" in r else ""
        gflops = f"{r['gflop_s']:.1f}" if "gflop_s" in r else ""
        lines.append(f"| {r['adapter']} | {r['system']} | {r['precision']} | {r['epochs']} | {r['tokens_per_s']:.0f} "
                     f"| {r['s_per_epoch']:.1f} | {gflops} | {mfu} | {r['peak_rss_mb']:.0f} | {r['test_f1']:.3f}; "
                     f"{r['f1_all']} | {ratio('speed_vs_trainer', 'speed_vs_trainer_best')} | "
                     f"{ratio('speed_vs_raw', 'speed_vs_raw_bf16')} |")
    return "\n".join(lines) + "\n"


def drive(args) -> None:
    from localize.tracking.record import versions

    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out_dir = Path(args.results) / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = [(a, int(e or args.epochs)) for a, _, e in (s.partition(":") for s in args.adapters.split(","))]

    def job(system: str, adapter: str, epochs: int, tag: str) -> dict[str, Any]:
        out = out_dir / f"{adapter}-{system}-{tag}.json"
        subprocess.run([sys.executable, __file__, "job", "--system", system, "--adapter", adapter, "--epochs",
                        str(epochs), "--seed", str(args.seed), "--out", str(out), "--workdir",
                        str(out_dir / f"work-{adapter}-{system}-{tag}"), *[f"--override={o}" for o in args.override]],
                       check=True, cwd=ROOT)
        return json.loads(out.read_text())

    peaks = matmul_peaks(args.matmul_n)  # before any job: the machine is as quiet as it will get
    print("[bench] matmul peak GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()), flush=True)
    flops = {a: job("flops", a, 1, "probe")["flops_per_token"] for a, _ in specs}
    print("[bench] training FLOPs/token: " + ", ".join(f"{a} {f:.3g}" for a, f in flops.items()), flush=True)
    rows = []
    for rep in range(args.repeats):
        for adapter, epochs in specs:
            for system in args.systems.split(","):
                if system == "textbook" and (adapter != "full" or rep > 0):
                    continue  # one textbook run shows the alignment problem; its speed is the Trainer's
                print(f"[bench] repeat {rep + 1}/{args.repeats}: {system} {adapter}", flush=True)
                rows.append(r := job(system, adapter, epochs, f"r{rep}"))
                print(f"[bench]   {r['precision']}: {r['tokens_per_s']:.0f} tok/s, {r['s_per_epoch']:.1f} s/epoch, "
                      f"F1 {r['test_f1']:.3f}, peak {r['peak_rss_mb']:.0f} MB", flush=True)
    # Timed again at the end, the higher kept: a start that a just-finished process still loads would make
    # the peaks low and every MFU high (session 6: about 2x).
    start, end = peaks, matmul_peaks(args.matmul_n)
    peaks = {k: max(start[k], end[k]) for k in start}
    print("[bench] matmul peak GFLOP/s at the end: " + ", ".join(f"{k} {v:.0f}" for k, v in end.items()), flush=True)
    rows = [{**r, **roofline(flops[r["adapter"]], r["tokens_per_s"], peaks)} for r in rows]
    table = summarise(rows, flops, peaks)
    pads = sorted({round(r["padding_fraction"], 3) for r in rows if "padding_fraction" in r})
    meta = {"argv": sys.argv[1:], "date": stamp, "epochs": args.epochs, "seed": args.seed, "repeats": args.repeats,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
            "versions": {k: v for k, v in versions().items() if k in ("torch", "transformers", "peft",
                                                                       "pytorch-lightning")},
            "padding": ", ".join(map(str, pads)) or "n/a", "peaks": peaks, "peaks_start": start, "peaks_end": end,
            "matmul_n": args.matmul_n,
            "flops_per_token": flops}
    (out_dir / "summary.json").write_text(json.dumps({"meta": meta, "table": table, "runs": rows}, indent=1))
    text = markdown(table, meta)
    (out_dir / "RESULTS.md").write_text(text)
    if args.write_results:
        results = Path(args.write_results)
        head = results.read_text().split("<!-- generated -->")[0] if results.exists() else ""
        results.write_text(head + "<!-- generated -->\n" + text)
    print(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    job = parser.add_subparsers(dest="cmd").add_parser("job", help="one system × adapter run (internal)")
    job.add_argument("--system", choices=[*SYSTEMS, "flops"], required=True)
    for opt in ("--adapter", "--out", "--workdir"):
        job.add_argument(opt, required=True)
    for opt in ("--epochs", "--seed"):
        job.add_argument(opt, type=int, required=True)
    job.add_argument("--override", action="append", default=[])
    # Full FT: 2 epochs measure its speed (10 cost ~25 min per system); LoRA: 10 epochs, the
    # default recipe, so its test F1 compares the systems at a useful model, not at step 50.
    parser.add_argument("--adapters", default="full:2,lora:10", help="adapter[:epochs],...")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    for opt, default in (("--epochs", 2), ("--repeats", 3), ("--seed", 42), ("--matmul-n", 2048)):
        parser.add_argument(opt, type=int, default=default)
    parser.add_argument("--override", action="append", default=[],
                        help="extra Hydra override for every system, e.g. --override=data.max_train_examples=100")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--write-results", default=str(ROOT / "benchmarks" / "RESULTS.md"),
                        help="file whose part after '<!-- generated -->' is replaced ('' to skip)")
    args = parser.parse_args(argv)
    run_job(args) if args.cmd == "job" else drive(args)


if __name__ == "__main__":
    main()
