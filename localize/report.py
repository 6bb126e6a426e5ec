"""Compare finished runs: ``python -m localize.report logs/runs [--out DIR] [--metric test/f1]``.

Reads every ``run.json`` under a folder (and optionally a W&B project), groups runs by
(task, locale, model, adapter) and writes ``comparison.md``, ``comparison.csv`` and PNG plots of
quality against trainable parameters, training time and stored size, plus dev learning curves.
Spread is the *sample* standard deviation over seeds (``ddof=1``; NaN for a single seed).
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import sys
import uuid
from typing import Any, Iterable

import pandas as pd

from localize.tracking.record import RECORD

log = logging.getLogger(__name__)

GROUP = ["task", "locale", "model", "adapter", "train_n"]  # train_n: low-resource curves
# Headline test metric per task (the one a method is ranked on); --metric overrides it.
METRIC_BY_TASK = {"ner": "test/f1", "sentiment": "test/f1_macro", "classification": "test/f1_macro",
                  "translation": "test/chrf"}
DEFAULT_METRIC = "test/f1"
# Files a run dir holds before it finishes: a dir with one of these but no run.json crashed.
_RUN_MARKERS = {".hydra", "train.log", "csv", "checkpoints", "wandb_id"}
# Record sections copied into flat columns.
_SECTIONS = {"params": ("total", "trainable", "trainable_share"),
             "storage": ("stored_mb", "full_model_mb"),
             "perf": ("epochs", "s_per_epoch", "train_tokens_per_s", "peak_rss_mb", "peak_gpu_mb", "wall_s")}
_NUMERIC = [k for keys in _SECTIONS.values() for k in keys]


def metric_for(task: str | None, metric: str | None = None) -> str:
    """The metric a task's runs are compared on: ``metric`` if given, else the task's default."""
    return metric or METRIC_BY_TASK.get(str(task), DEFAULT_METRIC)


def val_metric(metric: str) -> str:
    """The dev-set counterpart of a test metric (``test/f1`` -> ``val/f1``), for learning curves."""
    return "val/" + metric.split("/", 1)[1] if metric.startswith("test/") else metric


# --- collecting ------------------------------------------------------------------------------


def find_runs(folder: str) -> tuple[list[str], list[str]]:
    """Finished and unfinished run dirs under ``folder``.

    Returns:
        ``(finished, skipped)``: dirs with a ``run.json``, and dirs that look like a run (Hydra or
        Lightning files) but have none — crashed or still running.
    """
    finished, candidates = [], []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if RECORD in files:
            finished.append(root)
            dirs[:] = []  # a run dir's sub-folders (csv/, wandb/, model/) hold no other runs
        elif _RUN_MARKERS & set(dirs + files):
            candidates.append(root)  # crashed or running, unless records lie below it (baselines do)
    skipped = [c for c in candidates if not any(f.startswith(c + os.sep) for f in finished)]
    return finished, skipped


def record_to_row(record: dict[str, Any], run_dir: str | None = None, source: str = "local") -> dict[str, Any]:
    """Flatten one run record into a table row (metrics become columns such as ``test/f1``)."""
    row: dict[str, Any] = {k: record.get(k) for k in ("run_name", *GROUP, "seed")}
    row["train_n"] = ((record.get("data") or {}).get("sizes") or {}).get("train")
    for section, keys in _SECTIONS.items():
        part = record.get(section) or {}
        row.update({k: part.get(k) for k in keys})
    row["train_s"] = (row["s_per_epoch"] * row["epochs"]
                      if row["s_per_epoch"] is not None and row["epochs"] is not None else None)
    row.update({k: v for k, v in (record.get("metrics") or {}).items() if isinstance(v, (int, float))})
    row.update(source=source, run_dir=run_dir, wandb_id=record.get("wandb_id"),
               tags=",".join(record.get("tags") or []))
    return row


def collect(folder: str, wandb_project: str | None = None) -> pd.DataFrame:
    """One row per finished run under ``folder`` (recursively), plus W&B runs if asked.

    Args:
        folder: a log folder (``logs/runs``, ``logs/multiruns``, ``logs``...).
        wandb_project: ``ENTITY/PROJECT`` to pull finished runs from as well (online only);
            a W&B run whose id a local record already carries is not counted twice.

    Returns:
        A DataFrame with the group keys, cost columns (``trainable_share``, ``stored_mb``,
        ``s_per_epoch``, ``train_s``...), one column per metric and ``run_dir``.
        ``df.attrs["skipped"]`` lists the run dirs without a ``run.json``.
    """
    finished, skipped = find_runs(folder) if os.path.isdir(folder) else ([], [])
    if not os.path.isdir(folder) and not wandb_project:
        raise FileNotFoundError(f"no such folder: {folder}")
    rows = []
    for run_dir in finished:
        try:
            with open(os.path.join(run_dir, RECORD)) as f:
                rows.append(record_to_row(json.load(f), run_dir))
        except (OSError, ValueError) as e:  # unreadable record: count it with the skipped ones
            log.warning("skipping %s: %s", run_dir, e)
            skipped.append(run_dir)
    if wandb_project:
        local_ids = {r["wandb_id"] for r in rows if r.get("wandb_id")}
        records, n_unfinished = wandb_records(wandb_project)
        rows += [record_to_row(r, source="wandb") for r in records if r.get("wandb_id") not in local_ids]
        skipped += [f"wandb:{wandb_project} (unfinished run)"] * n_unfinished
    df = pd.DataFrame(rows, columns=None if rows else ["run_name", *GROUP, "seed", *_NUMERIC, "train_s",
                                                      "source", "run_dir"])
    for col in GROUP:  # missing keys (a run without a locale) group as "-"
        df[col] = df[col].map(lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    for col in _NUMERIC + ["train_s"]:
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    df.attrs["skipped"] = skipped
    return df


def wandb_records(project: str) -> tuple[list[dict[str, Any]], int]:
    """Finished W&B runs of ``ENTITY/PROJECT`` as run records (summary + config).

    Returns:
        ``(records, n_unfinished)``.

    Raises:
        RuntimeError: W&B is offline, has no API key, or the project can't be read.
    """
    try:
        import wandb

        if os.environ.get("WANDB_MODE") in ("offline", "disabled"):
            raise RuntimeError(f"WANDB_MODE={os.environ['WANDB_MODE']}")
        api = wandb.Api(timeout=30)
        if not api.api_key:
            raise RuntimeError("no API key (run `wandb login` or set WANDB_API_KEY)")
        runs = list(api.runs(project, lazy=False))  # config + summary in the listing, not a request per run
    except Exception as e:  # no key, no network, no such project: one message, not a traceback
        raise RuntimeError(f"cannot read W&B project '{project}' ({type(e).__name__}: {e}); "
                           f"report on local run dirs only, or sync offline runs with `make sync`") from e
    records = [wandb_run_to_record(r) for r in runs if r.state == "finished"]
    return records, len(runs) - len(records)


def wandb_run_to_record(run: Any) -> dict[str, Any]:
    """A W&B API run (``run.summary``, ``run.config``) in the local ``run.json`` shape."""
    cfg = _unflatten(dict(run.config))
    raw = getattr(run, "summary_metrics", None) or dict(run.summary)
    summary = {k: v for k, v in raw.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    tags = {t.split(":", 1)[0]: t.split(":", 1)[1] for t in (run.tags or []) if ":" in t}

    def pick(*path: str) -> Any:
        node: Any = cfg
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        return node

    def section(prefix: str) -> dict[str, Any]:
        return {k.split("/", 1)[1]: v for k, v in summary.items() if k.startswith(prefix + "/")}

    return {
        "run_name": run.name,
        "task": pick("task", "name") or tags.get("task"),
        "locale": pick("locale", "code") or tags.get("locale"),
        "model": pick("model", "name") or tags.get("model"),
        "adapter": pick("adapter", "name") or tags.get("adapter"),
        "seed": cfg.get("seed"),
        "tags": [t for t in (run.tags or []) if ":" not in t],
        "metrics": {k: v for k, v in summary.items() if k.split("/", 1)[0] in ("train", "val", "test")},
        "params": section("params"),
        "storage": section("storage"),
        "perf": section("perf"),
        "wandb_id": run.id,
        "config": cfg,
    }


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Nest ``{"a/b": 1}`` or ``{"a.b": 1}`` keys (however a logger flattened the config)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if isinstance(value, dict) and set(value) == {"value"}:  # raw W&B config entries
            value = value["value"]
        parts = key.replace("/", ".").split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node[parts[-1]] = _unflatten(value) if isinstance(value, dict) else value
    return out


# --- summarizing -----------------------------------------------------------------------------


def summarize(df: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """One row per (task, locale, model, adapter): quality mean ± std over seeds and mean costs.

    Args:
        df: runs from :func:`collect`.
        metric: test metric to compare on; None takes each task's default (``METRIC_BY_TASK``).

    Returns:
        Columns ``method, model, locale, task, seeds, n, metric, mean, std`` (sample std,
        ``ddof=1``), then the mean ``trainable_share, trainable, stored_mb, s_per_epoch,
        train_s, peak_rss_mb, tokens_per_s``. Sorted by setting, best method first.
    """
    cols = ["method", "model", "locale", "task", "train_n", "seeds", "n", "metric", "mean", "std", "trainable_share",
            "trainable", "stored_mb", "s_per_epoch", "train_s", "peak_rss_mb", "tokens_per_s"]
    rows = []
    for group, idx in df.groupby(GROUP).groups.items() if len(df) else []:
        runs = df.loc[idx]
        task, locale, model, adapter, train_n = group
        name = metric_for(task, metric)
        values = pd.to_numeric(runs[name], errors="coerce").dropna() if name in runs else pd.Series(dtype=float)
        seeds = sorted(runs["seed"].dropna().astype(int).tolist()) if "seed" in runs else []
        rows.append({
            "method": adapter, "model": model, "locale": locale, "task": task,
            "train_n": int(train_n) if str(train_n).isdigit() else math.nan, "seeds": seeds,
            "n": len(runs), "metric": name,
            "mean": values.mean() if len(values) else math.nan,
            "std": values.std(ddof=1) if len(values) > 1 else math.nan,
            **{c: _mean(runs, c) for c in ("trainable_share", "trainable", "stored_mb", "s_per_epoch",
                                           "train_s", "peak_rss_mb")},
            "tokens_per_s": _mean(runs, "train_tokens_per_s"),
        })
    out = pd.DataFrame(rows, columns=cols)
    if len(out):
        # Largest training set first: a low-resource curve reads top-down; a single size changes nothing.
        out = out.sort_values(["task", "locale", "model", "train_n", "mean"],
                              ascending=[True, True, True, False, False], na_position="last")
    return out.reset_index(drop=True)


def _mean(runs: pd.DataFrame, col: str) -> float:
    return float(pd.to_numeric(runs[col], errors="coerce").mean()) if col in runs else math.nan


def to_markdown(summary: pd.DataFrame, skipped: int = 0) -> str:
    """The comparison table as GitHub Markdown, numbers rounded for reading."""
    head = ["method", "model", "locale", "task", "train n", "seeds", "n", "metric", "mean ± std", "trainable %",
            "stored MB", "s/epoch", "train s", "peak RSS MB", "tokens/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary.itertuples():
        train_n = "n/a" if r.train_n != r.train_n else int(r.train_n)  # NaN: size not recorded
        cells = [r.method, r.model, r.locale, r.task, train_n, ",".join(map(str, r.seeds)), r.n, r.metric,
                 f"{_fmt(r.mean, 4)} ± {_fmt(r.std, 4)}", _fmt(100 * r.trainable_share, 3),
                 _fmt(r.stored_mb, 2), _fmt(r.s_per_epoch, 1), _fmt(r.train_s, 1), _fmt(r.peak_rss_mb, 0),
                 _fmt(r.tokens_per_s, 0)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    notes = ["", f"{len(summary)} methods from {int(summary['n'].sum()) if len(summary) else 0} finished runs; "
             "± is the sample standard deviation over seeds (ddof=1, n/a for one seed); costs are means."]
    if skipped:
        notes.append(f"{skipped} unfinished/crashed run dir(s) without run.json skipped.")
    mixed = [r.method for r in summary.itertuples() if len(set(r.seeds)) < len(r.seeds)]
    if mixed:
        notes.append(f"Warning: repeated seeds in {', '.join(mixed)}: runs with different hyperparameters "
                     "(a search's trials?) are averaged together; report on a folder of final runs.")
    return "\n".join(lines + notes) + "\n"


def _fmt(x: Any, digits: int) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


# --- plots -----------------------------------------------------------------------------------


def plot_all(df: pd.DataFrame, summary: pd.DataFrame, out_dir: str) -> list[str]:
    """Write the comparison plots as PNGs (atomically) and return their paths.

    Plots: quality vs trainable parameters, vs training time (s/epoch × epochs) and vs stored MB
    (log x; a dot per run, mean ± std error bars per method), and dev learning curves from each
    run's ``csv/metrics.csv`` (a line per run, coloured by adapter). A plot without data is skipped.
    """
    import matplotlib

    matplotlib.use("Agg")
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for x, label, name in (("trainable", "trainable parameters", "quality_vs_params.png"),
                           ("train_s", "training time, s (s/epoch × epochs)", "quality_vs_time.png"),
                           ("stored_mb", "stored MB per localized model", "quality_vs_storage.png")):
        fig = _tradeoff(df, summary, x, label)
        if fig is not None:
            paths.append(_save(fig, os.path.join(out_dir, name)))
    fig = _learning_curves(df, summary)
    if fig is not None:
        paths.append(_save(fig, os.path.join(out_dir, "learning_curves.png")))
    fig = _quality_vs_train_size(summary)
    if fig is not None:
        paths.append(_save(fig, os.path.join(out_dir, "quality_vs_train_size.png")))
    return paths


def _quality_vs_train_size(summary: pd.DataFrame):
    """Low-resource curves: mean ± std per method over training-set sizes (only when sizes vary)."""
    import matplotlib.pyplot as plt

    sized = summary.dropna(subset=["train_n"])
    if not len(sized) or sized.groupby("method")["train_n"].nunique().max() < 2:
        return None
    panels = _panels(sized)
    colors = _colors(sized["method"])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (task, metric) in zip(axes[0], panels):
        for method, rows in sized[sized["task"] == task].groupby("method"):
            rows = rows.sort_values("train_n")
            ax.errorbar(rows["train_n"], rows["mean"], yerr=rows["std"].fillna(0), marker="o", capsize=3,
                        color=colors[method], label=method)
        ax.set_xscale("log")
        ax.set(xlabel="training examples", ylabel=metric, title=f"{task}: {metric} vs training-set size")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _colors(adapters: Iterable[str]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    return {a: cmap(i % 10) for i, a in enumerate(sorted(set(adapters)))}


def _panels(summary: pd.DataFrame) -> list[tuple[str, str]]:
    """(task, metric) pairs: one subplot each, since metrics of different tasks don't share an axis."""
    return list(dict.fromkeys(zip(summary["task"], summary["metric"])))


def _tradeoff(df: pd.DataFrame, summary: pd.DataFrame, x: str, xlabel: str):
    import matplotlib.pyplot as plt

    panels = _panels(summary)
    if not panels or x not in df:
        return None
    colors = _colors(df["adapter"])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, (task, metric) in zip(axes[0], panels):
        runs = df[df["task"] == task]
        several = runs[["model", "locale"]].drop_duplicates().shape[0] > 1
        for r in summary[summary["task"] == task].itertuples():
            sel = runs[(runs["adapter"] == r.method) & (runs["model"] == r.model) & (runs["locale"] == r.locale)]
            xs = pd.to_numeric(sel[x], errors="coerce")
            ys = pd.to_numeric(sel[metric], errors="coerce") if metric in sel else xs * math.nan
            c, label = colors[r.method], f"{r.method}" + (f" ({r.model}, {r.locale})" if several else "")
            if ys.notna().any() and not (xs > 0).any():  # costs nothing (zero-shot baseline): a reference line
                ax.axhline(ys.mean(), color=c, ls="--", lw=1)
                ax.annotate(label, (0.01, ys.mean()), xycoords=("axes fraction", "data"), xytext=(0, 3),
                            textcoords="offset points", fontsize=8, color=c)
                continue
            ok = (xs > 0) & ys.notna()
            if not ok.any():
                continue
            ax.scatter(xs[ok], ys[ok], color=c, alpha=0.35, s=18)
            mx, my = xs[ok].mean(), ys[ok].mean()
            sd = ys[ok].std(ddof=1) if ok.sum() > 1 else 0.0
            ax.errorbar([mx], [my], yerr=[sd], fmt="o", color=c, capsize=4, ms=7)
            ax.annotate(label, (mx, my), textcoords="offset points", xytext=(6, 6), fontsize=8, color=c)
        ax.set_xscale("log")
        ax.margins(x=0.12, y=0.1)  # room for the labels at the edges
        ax.set(xlabel=xlabel, ylabel=metric, title=f"{task}: {metric} vs {xlabel.split(',')[0]}")
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def _learning_curves(df: pd.DataFrame, summary: pd.DataFrame):
    import matplotlib.pyplot as plt

    panels = _panels(summary)
    curves = []  # (task, adapter, dev metric per epoch)
    for r in df.itertuples():
        path = os.path.join(r.run_dir, "csv", "metrics.csv") if isinstance(r.run_dir, str) else None
        metric = dict(panels).get(r.task)
        if not path or not metric or not os.path.exists(path):
            continue
        curve = learning_curve(path, val_metric(metric))
        if len(curve):
            curves.append((r.task, r.adapter, curve))
    if not curves:
        return None
    colors = _colors(df["adapter"])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (task, metric) in zip(axes[0], panels):
        seen = set()
        for t, adapter, curve in curves:
            if t != task:
                continue
            ax.plot(curve.index + 1, curve.values, marker=".", color=colors[adapter], alpha=0.8,
                    label=None if adapter in seen else adapter)
            seen.add(adapter)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set(xlabel="epoch", ylabel=val_metric(metric), title=f"{task}: dev {val_metric(metric)} per epoch")
        ax.grid(alpha=0.3)
        if seen:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def learning_curve(csv_path: str, metric: str) -> pd.Series:
    """A run's dev metric per epoch from its Lightning ``metrics.csv`` (last value of each epoch)."""
    log_df = pd.read_csv(csv_path)
    if metric not in log_df or "epoch" not in log_df:
        return pd.Series(dtype=float)
    rows = log_df[["epoch", metric]].dropna()
    return rows.groupby(rows["epoch"].astype(int))[metric].last()


# --- writing ---------------------------------------------------------------------------------


def _atomic_write(path: str, write) -> str:
    """Call ``write(file)`` on a temp file beside ``path``, then rename it over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}-{os.path.basename(path)}")
    try:  # os.open, not mkstemp: mkstemp's files are 0600, these get the umask's usual mode
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _save(fig, path: str) -> str:
    import matplotlib.pyplot as plt

    try:
        return _atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    finally:
        plt.close(fig)


def write_report(folder: str, out_dir: str | None = None, metric: str | None = None,
                 wandb_project: str | None = None) -> dict[str, Any]:
    """Collect, summarize, plot and write ``comparison.md``/``comparison.csv``.

    Args:
        folder: log folder to scan for ``run.json`` records.
        out_dir: where to write (default ``<folder>/report``).
        metric: test metric to compare on (default per task, see ``METRIC_BY_TASK``).
        wandb_project: optional ``ENTITY/PROJECT`` to add W&B runs from.

    Returns:
        ``{"markdown": path, "csv": path, "plots": [paths], "runs": n, "skipped": n}``.
    """
    out_dir = out_dir or os.path.join(folder, "report")
    df = collect(folder, wandb_project)
    summary = summarize(df, metric)
    skipped = len(df.attrs.get("skipped", []))
    md = _atomic_write(os.path.join(out_dir, "comparison.md"),
                       lambda f: f.write(to_markdown(summary, skipped).encode()))
    table = summary.assign(seeds=summary["seeds"].map(lambda s: " ".join(map(str, s))))
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    csv = _atomic_write(os.path.join(out_dir, "comparison.csv"), lambda f: f.write(buf.getvalue().encode()))
    plots = plot_all(df, summary, out_dir) if len(df) else []
    return {"markdown": md, "csv": csv, "plots": plots, "runs": len(df), "skipped": skipped}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localize.report", description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="log folder with run dirs (e.g. logs/runs or logs)")
    parser.add_argument("--out", help="output folder (default <folder>/report)")
    parser.add_argument("--metric", help="test metric, e.g. test/f1 (default: per task)")
    parser.add_argument("--wandb-project", help="also pull finished runs from W&B ENTITY/PROJECT (online)")
    args = parser.parse_args(argv)
    try:
        paths = write_report(args.folder, args.out, args.metric, args.wandb_project)
    except (RuntimeError, FileNotFoundError) as e:
        print(f"[localize.report] error: {e}", file=sys.stderr)
        return 1
    with open(paths["markdown"]) as f:
        print(f.read())
    print(f"[localize.report] {paths['runs']} finished runs, {paths['skipped']} unfinished run dir(s) skipped")
    for p in [paths["markdown"], paths["csv"], *paths["plots"]]:
        print(f"  wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
