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


def _save(fig, path: str) -> str:
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path, "wb") as f:
            fig.savefig(f, format="png", dpi=120)
        return path
    finally:
        plt.close(fig)
