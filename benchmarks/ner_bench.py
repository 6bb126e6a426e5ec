"""Japanese NER training benchmark: localize vs the Hugging Face Trainer recipe vs a raw PyTorch loop.

    python benchmarks/ner_bench.py                      # = make bench: full (2 epochs) + LoRA (10), 2 repeats
    python benchmarks/ner_bench.py --adapters lora --repeats 1 --epochs 1
    python benchmarks/ner_bench.py --adapters full:2,lora:10     # epochs per adapter

Every system trains the same model (embedded e5-small), on the same seeded 400/50/50 split of the
embedded corpus, with the same features (localize's word-boundary-aware alignment), optimiser
parameter groups, warm-up schedule, gradient clipping, batch size, epochs and seed, and is scored by
the same word-level strict span F1. What differs is only the training machinery:

- ``localize``: ``python -m localize.train`` as users run it (length-grouped batches, Lightning).
- ``trainer``: ``AutoModelForTokenClassification`` + ``DataCollatorForTokenClassification`` +
  ``Trainer`` (random batches, the ``run_ner.py`` recipe), fed localize's aligned features.
- ``raw``: a minimal PyTorch loop over localize's own data loader (the overhead baseline).
- ``textbook``: the Trainer recipe with its own ``is_split_into_words=True`` features (labels on
  the first piece of each word, which for Japanese is often a bare ``▁``): shows why alignment matters.

Each job runs in its own process (clean peak RSS); repeats are interleaved so drifting machine load
hits every system alike. Validation and checkpointing are off in every system: the timed work is
training only. Results go to ``benchmarks/results/<date>/`` and ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = ("localize", "trainer", "raw", "textbook")
# The lightest settings that still exercise a realistic run; no W&B / CSV logging in any system.
COMMON = ["+locale=ja", "task=ner", "logger=none"]


# ---------------------------------------------------------------------------------------------- jobs
def compose(adapter: str, epochs: int, seed: int, extra: list[str] = ()):
    from localize.config import compose as compose_config

    return compose_config([*COMMON, f"adapter={adapter}", f"seed={seed}", f"trainer.max_epochs={epochs}", *extra])


def shared_setup(adapter: str, epochs: int, seed: int, overrides: list[str]):
    """Datamodule + LightningModule built from localize's own config (same data, model, adapter)."""
    import pytorch_lightning as pl

    from localize.utils import build

    cfg = compose(adapter, epochs, seed, overrides)
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
    opt = torch.optim.AdamW(groups)
    return opt, get_linear_schedule_with_warmup(opt, int(cfg.module.warmup_ratio * steps), steps)


def score(model, dm, loader=None) -> float:
    """Word-level strict span F1 on test — the scorer localize's test_step uses."""
    import torch

    from localize.models.decoding import argmax_tags
    from localize.models.token_cls import b_to_i_ids
    from localize.tracking.metrics import SpanF1

    label_names = dm.label_names
    metric = SpanF1(dict(enumerate(label_names)))
    b_to_i = b_to_i_ids(label_names)
    model.eval()
    with torch.inference_mode():
        for batch in loader or dm.test_dataloader():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            metric.update(argmax_tags(logits, batch["word_index"], b_to_i), batch["word_labels"], batch["index"])
    return float(metric.compute()["f1"])


def train_tokens(ds) -> int:
    """Non-pad tokens of one pass over an encoded training set."""
    return sum(sum(m) for m in ds["attention_mask"])


def job_localize(adapter: str, epochs: int, seed: int, workdir: Path, overrides: list[str]) -> dict[str, Any]:
    """The real entry point, in a subprocess; figures come from its run record."""
    cmd = [sys.executable, "-m", "localize.train", *COMMON, f"adapter={adapter}", f"seed={seed}",
           f"trainer.max_epochs={epochs}", "+trainer.limit_val_batches=0", "callbacks.model_checkpoint=null",
           "callbacks.early_stopping=null", f"paths.log_dir={workdir}", "run_name=bench", *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        raise RuntimeError(f"localize.train failed:\n{proc.stderr[-3000:]}")
    record = json.loads(next(workdir.rglob("run.json")).read_text())
    perf = record["perf"]
    return {"train_s": perf["s_per_epoch"] * perf["epochs"], "tokens": perf["train_tokens"],
            "peak_rss_mb": perf["peak_rss_mb"], "test_f1": record["metrics"]["test/f1"],
            "padding_fraction": record["data"]["padding_fraction"]["grouped"]}


def job_raw(adapter: str, epochs: int, seed: int, workdir: Path, overrides: list[str]) -> dict[str, Any]:
    import torch

    cfg, dm, module = shared_setup(adapter, epochs, seed, overrides)
    model = module.model
    loader = dm.train_dataloader()
    opt, sched = optimizer_and_schedule(cfg, model, epochs * len(loader))
    keys = ("input_ids", "attention_mask", "labels")
    model.train()
    start = time.perf_counter()
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)
        for batch in loader:
            loss = model(**{k: batch[k] for k in keys}).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.gradient_clip_val)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    train_s = time.perf_counter() - start
    return {"train_s": train_s, "tokens": epochs * train_tokens(dm.encoded["train"]), "test_f1": score(model, dm)}


def _hf_trainer(cfg, model, train_ds, collator, epochs: int, seed: int, workdir: Path):
    import math

    from transformers import Trainer, TrainerCallback, TrainingArguments

    class Timer(TrainerCallback):
        train_s = 0.0

        def on_epoch_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kw):
            Timer.train_s += time.perf_counter() - self.t0

    steps = epochs * math.ceil(len(train_ds) / cfg.data.batch_size)
    args = TrainingArguments(
        output_dir=str(workdir), per_device_train_batch_size=cfg.data.batch_size, num_train_epochs=epochs,
        max_grad_norm=cfg.trainer.gradient_clip_val, seed=seed, data_seed=seed, eval_strategy="no",
        save_strategy="no", report_to="none", logging_steps=cfg.trainer.log_every_n_steps,
        dataloader_num_workers=0, use_cpu=True, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, data_collator=collator,
                      optimizers=optimizer_and_schedule(cfg, model, steps), callbacks=[Timer()])
    trainer.train()
    return Timer.train_s


def job_trainer(adapter: str, epochs: int, seed: int, workdir: Path, overrides: list[str]) -> dict[str, Any]:
    from transformers import DataCollatorForTokenClassification

    cfg, dm, module = shared_setup(adapter, epochs, seed, overrides)
    train_ds = dm.encoded["train"].select_columns(["input_ids", "attention_mask", "labels"])
    collator = DataCollatorForTokenClassification(dm.tokenizer)
    train_s = _hf_trainer(cfg, module.model, train_ds, collator, epochs, seed, workdir)
    return {"train_s": train_s, "tokens": epochs * train_tokens(dm.encoded["train"]), "test_f1": score(module.model, dm)}


def job_textbook(adapter: str, epochs: int, seed: int, workdir: Path, overrides: list[str]) -> dict[str, Any]:
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
        first: dict[int, int] = {}
        for pos, w in enumerate(enc.word_ids()):
            if w is not None:
                first.setdefault(w, pos)
        labels = [-100] * len(enc["input_ids"])
        for w, pos in first.items():
            labels[pos] = label2id[ex["tags"][w]]
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels,
                "word_index": [first.get(w, -1) for w in range(len(words))],
                "word_labels": [label2id[t] for t in ex["tags"]], "index": idx}

    enc = {name: datasets.Dataset.from_list(dm.splits[name]).map(encode, with_indices=True)
           for name in ("train", "test")}
    train_ds = enc["train"].select_columns(["input_ids", "attention_mask", "labels"])
    train_s = _hf_trainer(cfg, module.model, train_ds, DataCollatorForTokenClassification(dm.tokenizer),
                          epochs, seed, workdir)
    test_cols = ["input_ids", "attention_mask", "word_index", "word_labels", "index"]
    test = DataLoader(enc["test"].select_columns(test_cols), batch_size=cfg.data.eval_batch_size,
                      collate_fn=PadCollator(dm.tokenizer.pad_token_id))
    return {"train_s": train_s, "tokens": epochs * train_tokens(enc["train"]), "test_f1": score(module.model, dm, test)}


JOBS = {"localize": job_localize, "trainer": job_trainer, "raw": job_raw, "textbook": job_textbook}


def run_job(args) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from localize.utils import quiet_libraries

    quiet_libraries()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out = JOBS[args.system](args.adapter, args.epochs, args.seed, workdir, args.override)
    # localize reports its own process's peak; the others are this process.
    out.setdefault("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out.update(system=args.system, adapter=args.adapter, epochs=args.epochs, seed=args.seed,
               tokens_per_s=out["tokens"] / out["train_s"], s_per_epoch=out["train_s"] / args.epochs)
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, args.out)  # a crashed job leaves no result that looks valid


# -------------------------------------------------------------------------------------------- driver
def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    for adapter in dict.fromkeys(r["adapter"] for r in rows):
        med = {}
        for system in SYSTEMS:
            runs = [r for r in rows if r["adapter"] == adapter and r["system"] == system]
            if not runs:
                continue
            med[system] = {k: statistics.median(r[k] for r in runs)
                           for k in ("tokens_per_s", "s_per_epoch", "peak_rss_mb", "test_f1")}
            med[system]["epochs"] = runs[0]["epochs"]
            med[system]["f1_all"] = [round(r["test_f1"], 3) for r in runs]
            med[system]["n"] = len(runs)
        for system, m in med.items():
            row = {"adapter": adapter, "system": system, **m}
            for ref in ("trainer", "raw"):
                if system == "localize" and ref in med:
                    row[f"speed_vs_{ref}"] = m["tokens_per_s"] / med[ref]["tokens_per_s"]
            table.append(row)
    return table


def markdown(table: list[dict[str, Any]], meta: dict[str, Any]) -> str:
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
        "",
        "| adapter | system | epochs | train tokens/s (non-pad) | s/epoch | peak RSS MB | test F1 (median; runs) | localize/Trainer | localize/raw |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in table:
        ratio = lambda k: f"{r[k]:.2f}×" if k in r else ""  # noqa: E731
        lines.append(f"| {r['adapter']} | {r['system']} | {r['epochs']} | {r['tokens_per_s']:.0f} | {r['s_per_epoch']:.1f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['test_f1']:.3f}; {r['f1_all']} | {ratio('speed_vs_trainer')} | "
                     f"{ratio('speed_vs_raw')} |")
    return "\n".join(lines) + "\n"


def drive(args) -> None:
    from localize.tracking.record import versions

    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out_dir = Path(args.results) / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for rep in range(args.repeats):
        for spec in args.adapters.split(","):
            adapter, _, epochs = spec.partition(":")
            epochs = int(epochs or args.epochs)
            for system in args.systems.split(","):
                if system == "textbook" and (adapter != "full" or rep > 0):
                    continue  # one textbook run shows the alignment problem; its speed is the Trainer's
                out = out_dir / f"{adapter}-{system}-r{rep}.json"
                cmd = [sys.executable, __file__, "job", "--system", system, "--adapter", adapter,
                       "--epochs", str(epochs), "--seed", str(args.seed), "--out", str(out),
                       "--workdir", str(out_dir / f"work-{adapter}-{system}-r{rep}"),
                       *[f"--override={o}" for o in args.override]]
                print(f"[bench] repeat {rep + 1}/{args.repeats}: {system} {adapter}", flush=True)
                subprocess.run(cmd, check=True, cwd=ROOT)
                rows.append(json.loads(out.read_text()))
                print(f"[bench]   {rows[-1]['tokens_per_s']:.0f} tok/s, {rows[-1]['s_per_epoch']:.1f} s/epoch, "
                      f"F1 {rows[-1]['test_f1']:.3f}, peak {rows[-1]['peak_rss_mb']:.0f} MB", flush=True)
    table = summarise(rows)
    pads = sorted({round(r["padding_fraction"], 3) for r in rows if "padding_fraction" in r})
    meta = {"argv": sys.argv[1:], "date": stamp, "epochs": args.epochs, "seed": args.seed, "repeats": args.repeats,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
            "versions": {k: v for k, v in versions().items() if k in ("torch", "transformers", "peft",
                                                                       "pytorch-lightning")},
            "padding": ", ".join(map(str, pads)) or "n/a"}
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
    sub = parser.add_subparsers(dest="cmd")
    job = sub.add_parser("job", help="one system × adapter run (internal)")
    job.add_argument("--system", choices=SYSTEMS, required=True)
    job.add_argument("--adapter", required=True)
    job.add_argument("--epochs", type=int, required=True)
    job.add_argument("--seed", type=int, required=True)
    job.add_argument("--out", required=True)
    job.add_argument("--workdir", required=True)
    job.add_argument("--override", action="append", default=[])
    for p in (parser,):  # driver options
        # Full FT: 2 epochs measure its speed (10 cost ~25 min per system); LoRA: 10 epochs, the
        # default recipe, so its test F1 compares the systems at a useful model, not at step 50.
        p.add_argument("--adapters", default="full:2,lora:10", help="adapter[:epochs],...")
        p.add_argument("--systems", default=",".join(SYSTEMS))
        p.add_argument("--epochs", type=int, default=2)
        p.add_argument("--repeats", type=int, default=2)
        p.add_argument("--seed", type=int, default=42)
        p.add_argument("--override", action="append", default=[],
                       help="extra Hydra override for every system, e.g. --override=data.max_train_examples=100")
        p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
        p.add_argument("--write-results", default=str(ROOT / "benchmarks" / "RESULTS.md"),
                       help="file whose part after '<!-- generated -->' is replaced ('' to skip)")
    args = parser.parse_args(argv)
    run_job(args) if args.cmd == "job" else drive(args)


if __name__ == "__main__":
    main()
