"""Collecting run records: local ``run.json`` files under a folder, and finished W&B runs."""
from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

import pandas as pd

from localize.tracking.record import RECORD, retested_group

log = logging.getLogger(__name__)

GROUP = ["task", "locale", "model", "adapter", "train_n"]  # train_n: low-resource curves
# Headline test metric per task (the one a method is ranked on); --metric overrides it.
METRIC_BY_TASK = {"ner": "test/f1", "sentiment": "test/f1_macro", "classification": "test/f1_macro",
                  "translation": "test/chrf"}
DEFAULT_METRIC = "test/f1"
CONTINUAL_RECORD = "continual.json"  # localize.continual.sequence.SEQUENCE_RECORD
# Files a run dir holds before it finishes: a dir with one of these but no run.json crashed.
_RUN_MARKERS = {".hydra", "train.log", "csv", "checkpoints", "wandb_id"}
# Record sections copied into flat columns.
_SECTIONS = {"params": ("total", "trainable", "trainable_share"),
             "storage": ("stored_mb", "full_model_mb"),
             "perf": ("epochs", "s_per_epoch", "train_tokens_per_s", "peak_rss_mb", "peak_gpu_mb", "wall_s")}
_NUMERIC = [k for keys in _SECTIONS.values() for k in keys]


def fmt(x: Any, digits: int = 4) -> str:
    """A table cell: ``n/a`` for a missing value (None or NaN), else ``digits`` decimals."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def metric_for(task: str | None, metric: str | None = None) -> str:
    """The metric a task's runs are compared on: ``metric`` if given, else the task's default."""
    return metric or METRIC_BY_TASK.get(str(task), DEFAULT_METRIC)


def val_metric(metric: str) -> str:
    """The dev-set counterpart of a test metric (``test/f1`` -> ``val/f1``), for learning curves."""
    return "val/" + metric.split("/", 1)[1] if metric.startswith("test/") else metric



def find_runs(folder: str) -> tuple[list[str], list[str]]:
    """Finished and unfinished run dirs under ``folder``.

    Returns:
        ``(finished, skipped)``: dirs with a ``run.json``, and dirs that look like a run (Hydra or
        Lightning files) but have none — crashed or still running. The stage runs and evaluations of
        a continual sequence (a dir with ``continual.json``) are not listed: ``report.continual`` reads them.
    """
    finished, candidates = [], []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if CONTINUAL_RECORD in files:  # a continual sequence: its stage runs are in its own section
            dirs[:] = []
            continue
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
    # What the record is: a training run (or baseline) enters the comparison; an evaluation of a trained
    # run on some data, or a debug run (fast_dev_run: a few batches), gets its own section.
    trainer = ((record.get("config") or {}).get("trainer") or {})
    row.update(job_type=record.get("job_type") or "train", debug=bool(trainer.get("fast_dev_run")),
               evaluated_run=record.get("evaluated_run_name"), train_locale=record.get("train_locale"))
    # Records written before "status" existed are finished runs (crashed ones have no record).
    row.update(status=record.get("status") or "finished", status_reason=record.get("status_reason"))
    row["train_n"] = ((record.get("data") or {}).get("sizes") or {}).get("train")
    augment = (record.get("data") or {}).get("augment") or {}
    if augment.get("operations"):  # an augmented run is its own method, at the size it was labelled
        row["adapter"] = "+".join([str(row["adapter"]), *augment["operations"]])
        row["train_n"] = row["train_n"] - augment.get("added", 0) if row["train_n"] is not None else None
    for section, keys in _SECTIONS.items():
        part = record.get(section) or {}
        row.update({k: part.get(k) for k in keys})
    row["train_s"] = (row["s_per_epoch"] * row["epochs"]
                      if row["s_per_epoch"] is not None and row["epochs"] is not None else None)
    row.update({k: v for k, v in (record.get("metrics") or {}).items() if isinstance(v, (int, float))})
    # Intervals (tracking.intervals) as <metric>_ci_low/_ci_high, the names W&B summaries carry too.
    for name, ci in (record.get("metrics_ci") or {}).items():
        row.update({f"{name}_ci_low": ci.get("low"), f"{name}_ci_high": ci.get("high")})
    predictions = record.get("test_predictions") or {}
    row.update(predictions=os.path.join(run_dir, predictions["file"]) if run_dir and predictions.get("file") else None,
               predictions_kind=predictions.get("kind"),
               predictions_options=json.dumps(predictions.get("options") or {}))
    row.update(source=source, run_dir=run_dir, wandb_id=record.get("wandb_id"),
               tags=",".join(record.get("tags") or []))
    cv = (record.get("data") or {}).get("cv") or {}  # folds of one CV group: localize.report.cv pools them
    row.update(cv_group=record.get("cv_group"), cv_folds=cv.get("folds"), cv_fold=cv.get("fold"))
    # Trained on labels flipped on purpose (data.label_noise, e.g. an audit's folds): not the method's score.
    row["label_noise"] = ((record.get("data") or {}).get("label_noise") or {}).get("fraction")
    return row


COMPARED_JOBS = ("train", "baseline")


def run_tags(row: pd.Series) -> list[str]:
    """A run's tags: :func:`record_to_row` stores them comma-joined."""
    return [t for t in str(row.get("tags") or "").split(",") if t]


def common_tags(df: pd.DataFrame) -> dict[str, set[str]]:
    """Per adapter, the tags every one of its runs in ``df`` carries."""
    common: dict[str, set[str]] = {}
    for _, r in df.iterrows() if len(df) else []:
        tags = set(run_tags(r))
        common[r["adapter"]] = common[r["adapter"]] & tags if r["adapter"] in common else tags
    return common


def method_label(run: pd.Series, common: dict[str, set[str]]) -> str:
    """The adapter, plus the tags that set this run's recipe apart from the adapter's other runs
    (``lora+searched``, ``full_frozen_emb+fp32``, ``icl+k8``): two recipes of one adapter get two names, an
    adapter with one recipe keeps its plain name (the ``--reference``)."""
    extra = [t for t in run_tags(run) if t not in common.get(run["adapter"], set())]
    return "+".join([str(run["adapter"])] + extra)


def label_recipes(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with each run's ``adapter`` replaced by its :func:`method_label`, so recipes of one adapter
    (``icl+k0``, ``icl+k8``) are grouped, tested and plotted as methods of their own, not as its seeds."""
    if not len(df):
        return df
    common = common_tags(df)
    return df.assign(adapter=[method_label(r, common) for _, r in df.iterrows()])


def kind_of(df: pd.DataFrame) -> pd.Series:
    """Per row of :func:`collect`: ``compared`` (training runs and baselines), ``evaluate``, ``debug`` or
    ``label_noise`` (trained on injected label flips)."""
    if not len(df):
        return pd.Series(dtype=str)
    jobs = df["job_type"] if "job_type" in df else pd.Series("train", index=df.index)
    debug = df["debug"].fillna(False).astype(bool) if "debug" in df else pd.Series(False, index=df.index)
    noise = df["label_noise"].notna() if "label_noise" in df else pd.Series(False, index=df.index)
    # A CV fold re-tested on its own fold (localize.evaluate, e.g. with module.decoding=viterbi) is a
    # configuration of its own, pooled and compared like the trained folds.
    retest = df["cv_group"].map(lambda g: retested_group(g) is not None) if "cv_group" in df \
        else pd.Series(False, index=df.index)
    return pd.Series(["debug" if d else "label_noise" if n else ("compared" if j in COMPARED_JOBS or r else str(j))
                      for j, d, n, r in zip(jobs, debug, noise, retest)], index=df.index)


def collect(folder: str, wandb_project: str | None = None) -> pd.DataFrame:
    """One row per finished run under ``folder`` (recursively), plus W&B runs if asked.

    Args:
        folder: a log folder (``logs/runs``, ``logs/multiruns``, ``logs``...).
        wandb_project: ``ENTITY/PROJECT`` to pull finished runs from as well (online only);
            a W&B run whose id a local record already carries is not counted twice.

    Returns:
        A DataFrame with the group keys, ``status`` (finished / failed / degenerate) and
        ``status_reason``, cost columns (``trainable_share``, ``stored_mb``,
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
    df = pd.DataFrame(rows, columns=None if rows else ["run_name", *GROUP, "seed", "status", "status_reason",
                                                      *_NUMERIC, "train_s", "source", "run_dir"])
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
