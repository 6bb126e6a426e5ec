"""Simulated active learning on the embedded Japanese NER corpus (issue 17, item 3).

The pool is the 400-sentence training split (400/50/50, drawn by the seed); its labels are revealed only when
a sentence is selected. Every strategy starts from one shared, seeded set of 100 sentences and its model; each
round the last model ranks the unlabelled rest (``localize.select.rank_pool``: the same code as
``python -m localize.select``), the top 100 are labelled, and a new model is trained from scratch on all
labelled sentences (``data.train_ids=``). The 400 point (all of the pool) is shared. Every training run
has the same fixed budget of optimizer steps (``trainer.max_steps``), so a small round is not simply
trained less; model selection is on the shared 50-sentence dev split only.

    .venv/bin/python experiments/active_learning/simulate.py [--seeds 1 2 3] [--acquisitions entropy margin random]
    .venv/bin/python experiments/active_learning/simulate.py --table     # the table from the finished runs

Each run dir is a normal run (run.json with its test CI and test predictions); a run with a record is not
trained again, so an interrupted simulation continues where it stopped.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from localize.config import compose  # noqa: E402
from localize.tracking.record import read_record  # noqa: E402

COMMON = ["+locale=ja", "task=ner"]
ROUNDS = (100, 200, 300)
FULL = 400


def write_lines(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def train_run(out: Path, overrides: list[str]) -> dict:
    from localize.train import train
    import wandb

    rec = read_record(str(out))
    if rec is None:
        try:
            rec = train(compose(overrides, "train", out_dir=str(out)))
        finally:
            wandb.finish()
    return rec


def simulate(out: Path, seed: int, acquisitions: list[str], steps: int, extra: list[str] = ()) -> None:
    from localize.runs import build_datamodule, load_run
    from localize.select import rank_pool
    from localize.utils import build

    # Early stopping off: it would cut the equal step budget short (a 100-sentence run has 36 dev passes).
    base = COMMON + [f"seed={seed}", f"trainer.max_steps={steps}", "callbacks.early_stopping=null",
                     f"tags=[active_learning,s{seed}]", *extra]
    train = build(compose(base, "train", out_dir=str(out)).data).splits["train"]
    ids = [str(ex["id"]) for ex in train]
    start = random.Random(f"{seed}/al-seed-set").sample(ids, ROUNDS[0])
    seed_dir = out / f"s{seed}"
    write_lines(seed_dir / "seed_set.jsonl", [{"id": i} for i in start])
    first = seed_dir / f"shared-{ROUNDS[0]}"
    train_run(first, base + [f"data.train_ids={seed_dir / 'seed_set.jsonl'}"])
    train_run(seed_dir / f"shared-{FULL}", base)
    by_id = {str(ex["id"]): ex for ex in train}
    for acq in acquisitions:
        labelled, model_dir = list(start), first
        for size in ROUNDS[1:]:
            step = seed_dir / acq / str(size)
            ids_file = step / "labelled.jsonl"
            if not ids_file.exists():
                pool = [{"id": i, "tokens": by_id[i]["tokens"]} for i in ids if i not in set(labelled)]  # no tags
                module = load_run(str(model_dir))
                ranked = rank_pool(module, build_datamodule(module.run_info), pool, acq, seed)
                picked = [pool[i]["id"] for i, _ in ranked[:size - len(labelled)]]
                write_lines(step / "picked.jsonl", [{"id": pool[i]["id"], "score": s} for i, s in ranked[:len(picked)]])
                write_lines(ids_file, [{"id": i} for i in labelled + picked])
            labelled = [json.loads(x)["id"] for x in ids_file.read_text().splitlines()]
            model_dir = step / "run"
            train_run(model_dir, base + [f"data.train_ids={ids_file}"])


def table(out: Path, acquisitions: list[str]) -> str:
    """Markdown: mean test F1 over seeds per (acquisition, labelled sentences) with the two-level
    bootstrap 95% CI, labelled words/entities, and the paired test against random at the same size."""
    from localize.tracking.intervals import metric_intervals, paired_test, run_predictions

    seeds = sorted(int(p.name[1:]) for p in out.glob("s*") if p.is_dir())

    def runs(acq: str, size: int) -> list[Path]:
        if size == ROUNDS[0]:
            return [out / f"s{s}" / f"shared-{size}" for s in seeds]
        if size == FULL:
            return [out / f"s{s}" / f"shared-{size}" for s in seeds]
        return [out / f"s{s}" / acq / str(size) / "run" for s in seeds]

    lines = [f"Seeds: {seeds} (a seed draws the 400/50/50 split, the seed set and the model's initialisation). "
             f"Test: the seed's 50 test sentences, the same for every acquisition; F1 = strict span F1 (seqeval), "
             f"mean over seeds, 95% CI: two-level bootstrap over seeds and sentences. Paired: bootstrap of the "
             f"difference against random at the same size, same seeds, same test sentences.", "",
             "| labelled sentences | " + " | ".join(acquisitions) + " | " + " | ".join(
                 f"{a} − random (p)" for a in acquisitions if a != "random") + " |",
             "|---" * (1 + len(acquisitions) + sum(a != "random" for a in acquisitions)) + "|"]
    words = {}
    for size in (*ROUNDS, FULL):
        cells, preds = [], {}
        for acq in acquisitions:
            dirs = [d for d in runs(acq, size) if read_record(str(d))]
            ps = [run_predictions(str(d)) for d in dirs]
            if not ps or any(p is None for p in ps):
                cells.append("–")
                continue
            preds[acq] = ps
            ci = metric_intervals(ps, ["f1"])["test/f1"]
            cells.append(f"{ci['estimate']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}] (n={len(ps)})")
            words[(acq, size)] = dirs
        tests = []
        for acq in acquisitions:
            if acq == "random":
                continue
            if size in (ROUNDS[0], FULL) or acq not in preds or "random" not in preds:
                tests.append("shared" if size in (ROUNDS[0], FULL) else "–")
                continue
            tests.append(_cell(paired_test(preds[acq], preds["random"], "f1")))
        lines.append(f"| {size} | " + " | ".join(cells) + " | " + " | ".join(tests) + " |")
    # The acceptance's question: does a smaller selected set reach the full pool's F1?
    full = {d.relative_to(out).parts[0]: run_predictions(str(d)) for d in runs("random", FULL) if read_record(str(d))}
    lines += ["", f"Against the {FULL}-sentence point (all of the pool), paired on the same seeds and test sentences:", "",
              "| labelled sentences | " + " | ".join(f"{a} − {FULL}" for a in acquisitions) + " |",
              "|---" * (1 + len(acquisitions)) + "|"]
    for size in ROUNDS[1:]:
        row = []
        for acq in acquisitions:
            dirs = [d for d in runs(acq, size) if read_record(str(d)) and d.relative_to(out).parts[0] in full]
            ref = [full[d.relative_to(out).parts[0]] for d in dirs]  # the same seed's 400 point
            if not dirs:
                row.append("–")
                continue
            row.append(_cell(paired_test([run_predictions(str(d)) for d in dirs], ref, "f1")))
        lines.append(f"| {size} | " + " | ".join(row) + " |")
    # Uncertainty acquisitions against each other (the question after "which beats random").
    pairs = [(a, b) for i, a in enumerate(acquisitions) for b in acquisitions[i + 1:] if "random" not in (a, b)]
    if pairs:
        lines += ["", "Acquisitions against each other, paired on the same seeds and test sentences:", "",
                  "| labelled sentences | " + " | ".join(f"{a} − {b}" for a, b in pairs) + " |",
                  "|---" * (1 + len(pairs)) + "|"]
    for size in ROUNDS[1:] if pairs else ():
        row = []
        for a, b in pairs:
            da = {d.relative_to(out).parts[0]: d for d in runs(a, size) if read_record(str(d))}
            db = {d.relative_to(out).parts[0]: d for d in runs(b, size) if read_record(str(d))}
            both = sorted(set(da) & set(db))
            if not both:
                row.append("–")
                continue
            row.append(_cell(paired_test([run_predictions(str(da[s])) for s in both],
                                         [run_predictions(str(db[s])) for s in both], "f1")))
        lines.append(f"| {size} | " + " | ".join(row) + " |")
    lines += ["", "Words labelled (mean over seeds) — total token entropy favours long sentences:", "",
              "| labelled sentences | " + " | ".join(acquisitions) + " |", "|---" * (1 + len(acquisitions)) + "|"]
    for size in (*ROUNDS, FULL):
        row = []
        for acq in acquisitions:
            dirs = words.get((acq, size), [])
            counts = [_words(d) for d in dirs]
            row.append(f"{sum(counts) / len(counts):.0f}" if counts else "–")
        lines.append(f"| {size} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _cell(test: dict) -> str:
    """A paired test as a table cell: difference [95% CI] (verdict with p)."""
    from localize.tracking.intervals import verdict

    return f"{test['difference']:+.3f} [{test['low']:+.3f}, {test['high']:+.3f}] ({verdict(test)})"


@functools.lru_cache(maxsize=None)
def _pool_words(seed: str) -> dict[str, int]:
    """Words per sentence id of the seed's 400-sentence pool (the embedded corpus and the seed rebuild it)."""
    from localize.utils import build

    pool = build(compose(COMMON + [f"seed={seed}"], "train").data).splits["train"]
    return {str(ex["id"]): len(ex["tokens"]) for ex in pool}


def _words(run: Path) -> int:
    """Words in a run's training split (labelling cost): its labelled ids (the round's labelled.jsonl, the
    seed set, or all of the pool) counted in the seed's pool, which the embedded corpus and the seed rebuild,
    so an archived copy of the run dirs (records and id files only) gives the same count."""
    seed_dir = next(p for p in (run, *run.parents) if p.name.startswith("s") and p.name[1:].isdigit())
    words = _pool_words(seed_dir.name[1:])
    ids_file = {f"shared-{ROUNDS[0]}": seed_dir / "seed_set.jsonl"}.get(run.name, run.parent / "labelled.jsonl")
    if run.name == f"shared-{FULL}":
        return sum(words.values())
    return sum(words[json.loads(x)["id"]] for x in ids_file.read_text().splitlines())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--acquisitions", nargs="+", default=["entropy", "margin", "random"])
    ap.add_argument("--steps", type=int, default=250, help="optimizer steps of every run (400 sentences x 10 epochs)")
    ap.add_argument("--out", default=os.environ.get("OUT", "logs/experiments/active_learning"))
    ap.add_argument("--override", nargs="*", default=[], help="more training overrides (a smoke run: model=tiny_random)")
    ap.add_argument("--table", action="store_true", help="only print the table of the finished runs")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    if not args.table:
        for seed in args.seeds:
            simulate(out, seed, args.acquisitions, args.steps, args.override)
    print(table(out, args.acquisitions))


if __name__ == "__main__":
    main()
