"""W&B logging that never costs a run: offline by default, online when configured, CSV on failure.

At the end of a run (``log_run_end``, after ``run.json``) W&B gets what the run dir holds:

* artifacts: ``run.json`` (type ``run-record``, name ``run-<run name>``) and the stored ``model/``
  folder (type ``adapter`` for a peft folder, else ``model``; name ``<type>-<run name>``), each file
  redacted by the rules of ``localize.tracking.record`` first. Offline they are staged with the
  offline run (``<run dir>/wandb/offline-run-*``) and uploaded by ``wandb sync``;
* ``test/predictions``: a ``wandb.Table`` of the first ``TABLE_ROWS`` rows of ``test_predictions.jsonl``
  (one column per field; lists and dicts as JSON text);
* the summary's ``perf/peak_rss_mb`` (and ``perf/peak_gpu_mb``, ``perf/peak_rss_scope``): run.json's
  own figures, replacing the value logged at the end of ``fit``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from localize.tracking.record import PREDICTIONS, RECORD, redact, redact_overrides, redact_text

TABLE_ROWS = 100
RECORD_TYPE = "run-record"
_TEXT_SUFFIXES = (".json", ".jsonl", ".md", ".txt", ".yaml", ".yml", ".cfg")
_PEAKS = ("peak_rss_mb", "peak_gpu_mb", "peak_rss_scope")

log = logging.getLogger(__name__)


@contextlib.contextmanager
def redacted_argv() -> Iterator[None]:
    """``sys.argv`` with secrets blanked (``localize.tracking.record`` rules) for the block: W&B reads
    it when the run starts (its settings' ``_args``) and writes it to the run's metadata."""
    saved = list(sys.argv)
    sys.argv[:] = saved[:1] + redact_overrides(saved[1:])
    try:
        yield
    finally:
        sys.argv[:] = saved


def wandb_logger(
    project: str,
    name: str,
    group: str,
    tags: list[str],
    save_dir: str,
    mode: str = "offline",
    entity: str | None = None,
    job_type: str = "train",
    run_id: str | None = None,
    extra_tags: list[str] | None = None,
    log_model: bool = True,
):
    """A Lightning ``WandbLogger``, or None (with one warning) when W&B cannot start.

    Args:
        project: W&B project.
        name: run name.
        group: W&B group (task-locale), so the UI groups comparable runs.
        tags: run tags (model/locale/task/adapter).
        save_dir: the run dir; offline runs land in ``<save_dir>/wandb`` for ``wandb sync``.
        mode: ``offline`` (default here: no server), ``online`` or ``disabled``.
        entity: W&B entity (team or user).
        job_type: train / evaluate; a training run of a search becomes ``sweep`` (``search_group``).
        run_id: resume this W&B run (kept in the run dir's ``wandb_id`` file).
        extra_tags: user tags (``tags=[...]`` at the top level).
        log_model: log the stored ``model/`` folder as an artifact at the end (``log_run_end``); false
            keeps W&B to the record (a full fine-tune's folder is ~100 MB-1 GB per run, copied into W&B's
            staging area until synced).
    """
    import wandb
    from pytorch_lightning.loggers import WandbLogger

    if os.environ.get("WANDB_API_KEY") and "WANDB_MODE" not in os.environ:
        mode = "online"  # the user configured W&B: log there as usual
    group, job_type = search_group(group, job_type)
    os.makedirs(save_dir, exist_ok=True)
    id_file = os.path.join(save_dir, "wandb_id")
    if run_id is None and os.path.exists(id_file):
        run_id = open(id_file).read().strip() or None  # resuming in the same run dir
    try:
        logger = WandbLogger(
            project=project, name=name, group=group, tags=list(tags) + list(extra_tags or []),
            save_dir=save_dir, mode=mode, entity=entity, job_type=job_type, id=run_id,
            resume="allow" if run_id else None,
            # quiet: no 35-line history/summary footer repeating the test table (train.py prints one line)
            settings=wandb.Settings(quiet=True),
        )
        # Lightning always passes anonymous=None, which W&B answers with a deprecation warning per run.
        logger._wandb_init.pop("anonymous", None)
        logger.localize_log_model = bool(log_model)  # read by log_run_end
        with redacted_argv():  # W&B records sys.argv (wandb-metadata.json, the .wandb file) at init
            experiment = logger.experiment  # start now, so failures surface here and not mid-training
        if isinstance(getattr(experiment, "id", None), str):  # DDP ranks > 0 hold a dummy experiment
            with open(id_file, "w") as f:
                f.write(experiment.id)
        return logger
    except Exception as e:  # W&B down, bad key, no disk: the run goes on with its local record
        warnings.warn(f"W&B unavailable ({type(e).__name__}: {e}); logging locally only (CSV + run.json)")
        return None


def search_group(group: str, job_type: str) -> tuple[str, str]:
    """``(group, job_type)`` of a run: a training run started by a search is ``job_type: sweep``,
    grouped by its search — the W&B sweep (``sweep-<id>``; ``wandb agent`` sets ``WANDB_SWEEP_ID``)
    or the Optuna study of a Hydra multirun (``study-<hydra.sweeper.study_name>``). Other runs keep
    theirs (``evaluate``; a continual sequence's stages are grouped by the sequence already)."""
    if job_type != "train":
        return group, job_type
    sweep = os.environ.get("WANDB_SWEEP_ID")
    if sweep:
        return f"sweep-{sweep}", "sweep"
    study = _hydra_study()
    return (f"study-{study}", "sweep") if study else (group, job_type)


def _hydra_study() -> str | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    return hc.sweeper.get("study_name") or None  # a plain multirun (-m seed=1,2) is no search


def wandb_run(loggers: Sequence[Any]) -> Any:
    """The W&B run behind the first logger :func:`wandb_logger` made (None: no W&B, or a DDP rank > 0,
    whose experiment is a dummy)."""
    for lg in loggers or []:
        if hasattr(lg, "localize_log_model") and isinstance(getattr(lg.experiment, "id", None), str):
            return lg.experiment
    return None


def log_run_end(loggers: Sequence[Any], run_dir: str) -> None:
    """Log a finished run dir to its W&B run (module docstring): peak memory, the test-predictions
    table, the record and model artifacts. Call it after ``run.json`` is written; W&B problems only
    warn (the run and its local record stand)."""
    try:
        run = wandb_run(loggers)
        path = os.path.join(run_dir, RECORD)
        if run is None or not os.path.exists(path):
            return
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        perf = record.get("perf") or {}
        run.summary.update({f"perf/{k}": perf[k] for k in _PEAKS if k in perf})
        table = predictions_table(os.path.join(run_dir, (record.get("test_predictions") or {}).get("file") or PREDICTIONS))
        if table is not None:
            run.log({"test/predictions": table})
        log_model = next((lg.localize_log_model for lg in loggers or [] if hasattr(lg, "localize_log_model")), True)
        _log_artifacts(run, run_dir, record, log_model)
    except Exception as e:  # W&B is a mirror of the run dir: never fail a finished run over it
        warnings.warn(f"W&B: could not log the end of {run_dir} ({type(e).__name__}: {e}); run.json is complete")


def predictions_table(path: str, n: int = TABLE_ROWS):
    """A ``wandb.Table`` of the first ``n`` rows of a ``test_predictions.jsonl`` (None if absent)."""
    import wandb

    if not os.path.exists(path):
        return None
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) >= n:
                break
    if not rows:
        return None
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return wandb.Table(columns=columns, data=[[table_cell(r.get(c)) for c in columns] for r in rows])


def table_cell(value: Any) -> Any:
    """A table cell: scalars as they are, lists/dicts as JSON text (W&B types a column once; nested
    span lists of varying shape would not fit one type)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, ensure_ascii=False)


def artifact_name(kind: str, run_name: str) -> str:
    """``<kind>-<run name>`` in the characters W&B allows in an artifact name (at most 128)."""
    return re.sub(r"[^\w.-]+", "-", f"{kind}-{run_name}")[:128]


def _log_artifacts(run: Any, run_dir: str, record: dict[str, Any], log_model: bool = True) -> None:
    import wandb

    from localize.tracking.storage import MODEL_DIR, PEFT_CONFIG

    name = str(record.get("run_name") or os.path.basename(run_dir))
    meta = redact({k: record.get(k) for k in ("job_type", "task", "locale", "model", "adapter", "seed", "status",
                                              "metrics")})
    with tempfile.TemporaryDirectory() as staging:  # redacted copies; add_file copies them into W&B's staging
        art = wandb.Artifact(artifact_name("run", name), type=RECORD_TYPE, metadata=meta)
        _add_redacted(art, os.path.join(run_dir, RECORD), RECORD, staging)
        run.log_artifact(art)
        model_dir = os.path.join(run_dir, MODEL_DIR)
        if log_model and os.path.isdir(model_dir):
            kind = "adapter" if os.path.exists(os.path.join(model_dir, PEFT_CONFIG)) else "model"
            art = wandb.Artifact(artifact_name(kind, name), type=kind,
                                 metadata={**meta, "storage": redact(record.get("storage"))})
            for root, _, files in os.walk(model_dir):
                for file in sorted(files):
                    path = os.path.join(root, file)
                    _add_redacted(art, path, os.path.relpath(path, model_dir), staging)
            run.log_artifact(art)


def _add_redacted(artifact: Any, path: str, name: str, staging: str) -> None:
    """Add ``path`` as ``name``, or a redacted copy of it when it holds a secret (text and JSON
    files; a safetensors file's metadata header)."""
    clean = _redacted_copy(path)
    if clean is None:
        artifact.add_file(path, name=name)
        return
    target = os.path.join(staging, name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    clean(target)
    log.warning("W&B artifact: a secret was blanked in %s before logging it", name)
    artifact.add_file(target, name=name)


def _redacted_copy(path: str):
    """None when ``path`` holds nothing to redact, else a function writing the redacted copy."""
    if path.endswith(".safetensors"):
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file

        with safe_open(path, framework="pt") as f:
            header = f.metadata() or {}
        clean_header = redact(header)
        if clean_header == header:
            return None
        return lambda target: save_file(load_file(path), target, metadata=clean_header)
    if not path.endswith(_TEXT_SUFFIXES):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if data is not None:
            clean = redact(data)
            if clean == data:
                return None
            return lambda target: _write(target, json.dumps(clean, indent=2, ensure_ascii=False))
    clean_text = redact_text(text)
    return None if clean_text == text else (lambda target: _write(target, clean_text))


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
