"""Train-locale x eval-locale transfer matrix: every trained run evaluated on every eval set.

    python experiments/transfer/transfer.py experiments/transfer/offline.yaml \
        --train ja_words=<run dir> --train ja_chars=<run dir> [--out experiments/transfer/results]

Each cell is one ``localize.evaluate`` job (normal datamodule + ``trainer.test``, recorded as a
run with ``job_type: evaluate`` under ``<out>/evals/<row>__<col>``). Writes ``results.csv``
(long form, one row per cell with the paths of both runs), ``matrix.csv`` (rows: train set,
columns: eval set, values: the metric) and ``heatmap.png``.

A row's diagonal cell is the run's own test split (same seed and split sizes as in training, so
it reproduces the run's recorded score); off-diagonal cells are zero-shot transfer — the
"before localization" figure for the column's locale.
"""
from __future__ import annotations

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
from localize.config import compose  # noqa: E402
from localize.evaluate import evaluate  # noqa: E402


def transfer_matrix(train: dict[str, str], evals: dict[str, list[str]], out_dir: str, metric: str = "test/f1",
                    overrides: list[str] | None = None) -> pd.DataFrame:
    """Evaluate every ``train`` run on every ``evals`` set; write results.csv, matrix.csv, heatmap.png.

    Args:
        train: row name -> finished run dir.
        evals: column name -> ``localize.evaluate`` overrides selecting the data (``+locale=ko``,
            ``data.path=...``).
        out_dir: where evaluation run dirs and the outputs go.
        metric: the cell value.
        overrides: extra overrides for every cell (``trainer=cpu``, ``logger=csv``...).

    Returns:
        The matrix (rows: train, columns: eval).
    """
    skipped = [name for name, run in train.items() if not run]
    train = {name: run for name, run in train.items() if run}
    if not train:
        raise SystemExit(f"no run dir for any row ({skipped}): pass --train NAME=<run dir> "
                         f"(see experiments/transfer/README.md)")
    if skipped:
        print(f"rows without a run dir, left out: {skipped}", file=sys.stderr)
    rows = []
    for row, run in train.items():
        for col, data_overrides in evals.items():
            cell_dir = os.path.join(out_dir, "evals", f"{row}__{col}")
            cfg = compose([f"run={os.path.abspath(run)}", *(overrides or []), *data_overrides], "evaluate", cell_dir)
            record = evaluate(cfg)
            rows.append({"train": row, "eval": col, metric: record["metrics"].get(metric),
                         "run_recorded": (record.get("run_metrics") or {}).get(metric),
                         "test_sentences": (record["data"].get("sizes") or {}).get("test"),
                         "run": record["evaluated_run"], "eval_dir": cell_dir})
    long = pd.DataFrame(rows)
    matrix = long.pivot(index="train", columns="eval", values=metric).reindex(index=list(train), columns=list(evals))
    os.makedirs(out_dir, exist_ok=True)
    long.to_csv(os.path.join(out_dir, "results.csv"), index=False)
    matrix.to_csv(os.path.join(out_dir, "matrix.csv"))
    heatmap(matrix, os.path.join(out_dir, "heatmap.png"), metric)
    return matrix


def heatmap(matrix: pd.DataFrame, path: str, metric: str) -> str:
    """Annotated heatmap of a transfer matrix (rows: trained on, columns: evaluated on)."""
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * matrix.shape[1], 1.2 + 0.9 * matrix.shape[0]))
    im = ax.imshow(matrix.values.astype(float), cmap="viridis", vmin=0, vmax=max(1e-9, float(matrix.max().max())))
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=30, ha="right")
    ax.set_yticks(range(matrix.shape[0]), matrix.index)
    ax.set_xlabel("evaluated on")
    ax.set_ylabel("trained on")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            v = matrix.values[i, j]
            ax.text(j, i, "-" if pd.isna(v) else f"{v:.3f}", ha="center", va="center",
                    color="white" if v < 0.6 * float(matrix.max().max()) else "black")
    fig.colorbar(im, ax=ax, label=metric)
    ax.set_title(f"transfer: {metric}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="YAML with train: {name: run dir} and eval: {name: [overrides]}")
    parser.add_argument("--train", action="append", default=[], metavar="NAME=RUN_DIR", help="set/replace a row")
    parser.add_argument("--out", default=None, help="output dir (default: the config's out)")
    args = parser.parse_args(argv)
    with open(args.config) as f:
        spec = yaml.safe_load(f)
    train = dict(spec.get("train") or {})
    for item in args.train:
        name, _, run = item.partition("=")
        train[name] = run
    out = args.out or spec.get("out") or os.path.join(os.path.dirname(args.config), "results")
    matrix = transfer_matrix(train, spec["eval"], out, spec.get("metric", "test/f1"), spec.get("overrides"))
    print(matrix.round(4).to_string())
    print(f"wrote {out}/matrix.csv, results.csv, heatmap.png")


if __name__ == "__main__":
    main()
