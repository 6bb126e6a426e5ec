"""Comparison plots (PNG): quality against cost, dev learning curves, low-resource curves."""
from __future__ import annotations

import math
import os
from typing import Any, Iterable

import pandas as pd

from localize.tracking.atomic import atomic_file
from localize.report.records import val_metric


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


MARKERS = "osD^vP*Xph<>"


def _series(df: pd.DataFrame) -> tuple[Any, Any]:
    """Colour per method and marker per (model, locale), and the label of a series: the method, plus
    model and locale where the runs hold more than one (a legend, not labels on the points, so 10+
    series never overlap)."""
    colors = _colors(df["adapter"])
    settings = sorted(set(zip(df["model"].astype(str), df["locale"].astype(str))))
    markers = {k: MARKERS[i % len(MARKERS)] for i, k in enumerate(settings)}

    def label(method: str, model: str, locale: str) -> str:
        return method + (f" ({model}, {locale})" if len(settings) > 1 else "")

    return (colors, markers), label


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)


def _tradeoff(df: pd.DataFrame, summary: pd.DataFrame, x: str, xlabel: str):
    import matplotlib.pyplot as plt

    panels = _panels(summary)
    if not panels or x not in df:
        return None
    (colors, markers), label_of = _series(df)
    fig, axes = plt.subplots(1, len(panels), figsize=(8.5 * len(panels), 4.8), squeeze=False)
    for ax, (task, metric) in zip(axes[0], panels):
        runs = df[df["task"] == task]
        for r in summary[summary["task"] == task].itertuples():
            sel = runs[(runs["adapter"] == r.method) & (runs["model"] == r.model) & (runs["locale"] == r.locale)]
            xs = pd.to_numeric(sel[x], errors="coerce")
            ys = pd.to_numeric(sel[metric], errors="coerce") if metric in sel else xs * math.nan
            c, m = colors[r.method], markers.get((str(r.model), str(r.locale)), "o")
            label = label_of(r.method, r.model, r.locale)
            if ys.notna().any() and not (xs > 0).any():  # costs nothing (zero-shot baseline): a reference line
                ax.axhline(ys.mean(), color=c, ls="--", lw=1, label=f"{label} (no training)")
                continue
            ok = (xs > 0) & ys.notna()
            if not ok.any():
                continue
            ax.scatter(xs[ok], ys[ok], color=c, marker=m, alpha=0.35, s=18)
            mx, my = xs[ok].mean(), ys[ok].mean()
            sd = ys[ok].std(ddof=1) if ok.sum() > 1 else 0.0
            ax.errorbar([mx], [my], yerr=[sd], fmt=m, color=c, capsize=4, ms=7, label=label)
        ax.set_xscale("log")
        ax.margins(x=0.08, y=0.1)
        ax.set(xlabel=xlabel, ylabel=metric, title=f"{task}: {metric} vs {xlabel.split(',')[0]}")
        ax.grid(alpha=0.3, which="both")
        _legend(ax)
    fig.tight_layout()
    return fig


def _learning_curves(df: pd.DataFrame, summary: pd.DataFrame):
    import matplotlib.pyplot as plt

    panels = _panels(summary)
    curves = []  # (task, series label, adapter, (model, locale), dev metric per epoch)
    (colors, markers), label_of = _series(df)
    for r in df.itertuples():
        path = os.path.join(r.run_dir, "csv", "metrics.csv") if isinstance(r.run_dir, str) else None
        metric = dict(panels).get(r.task)
        if not path or not metric or not os.path.exists(path):
            continue
        curve = learning_curve(path, val_metric(metric))
        if len(curve):
            curves.append((r.task, label_of(r.adapter, r.model, r.locale), r.adapter, (str(r.model), str(r.locale)),
                           curve))
    if not curves:
        return None
    lines = {k: ("-", "--", ":", "-.")[i % 4] for i, k in enumerate(markers)}  # per (model, locale), like markers
    fig, axes = plt.subplots(1, len(panels), figsize=(8.5 * len(panels), 4.5), squeeze=False)
    for ax, (task, metric) in zip(axes[0], panels):
        seen = set()
        for t, label, adapter, setting, curve in curves:
            if t != task:
                continue
            ax.plot(curve.index + 1, curve.values, marker=markers[setting], ms=3, color=colors[adapter],
                    ls=lines[setting], alpha=0.8, label=None if label in seen else label)
            seen.add(label)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set(xlabel="epoch", ylabel=val_metric(metric), title=f"{task}: dev {val_metric(metric)} per epoch")
        ax.grid(alpha=0.3)
        _legend(ax)
    fig.tight_layout()
    return fig


def learning_curve(csv_path: str, metric: str) -> pd.Series:
    """A run's dev metric per epoch from its Lightning ``metrics.csv`` (last value of each epoch)."""
    log_df = pd.read_csv(csv_path)
    if metric not in log_df or "epoch" not in log_df:
        return pd.Series(dtype=float)
    rows = log_df[["epoch", metric]].dropna()
    return rows.groupby(rows["epoch"].astype(int))[metric].last()


def _save(fig, path: str) -> str:
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path, "wb") as f:
            fig.savefig(f, format="png", dpi=120, bbox_inches="tight")  # legends sit outside
        return path
    finally:
        plt.close(fig)
