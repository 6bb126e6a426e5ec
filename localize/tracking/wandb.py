"""W&B logging that never costs a run: offline by default, online when configured, CSV on failure."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from localize.tracking.record import redact_overrides

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
        job_type: train / evaluate.
        run_id: resume this W&B run (kept in the run dir's ``wandb_id`` file).
        extra_tags: user tags (``tags=[...]`` at the top level).
    """
    import wandb
    from pytorch_lightning.loggers import WandbLogger

    if os.environ.get("WANDB_API_KEY") and "WANDB_MODE" not in os.environ:
        mode = "online"  # the user configured W&B: log there as usual
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
        with redacted_argv():  # W&B records sys.argv (wandb-metadata.json, the .wandb file) at init
            experiment = logger.experiment  # start now, so failures surface here and not mid-training
        if isinstance(getattr(experiment, "id", None), str):  # DDP ranks > 0 hold a dummy experiment
            with open(id_file, "w") as f:
                f.write(experiment.id)
        return logger
    except Exception as e:  # W&B down, bad key, no disk: the run goes on with its local record
        warnings.warn(f"W&B unavailable ({type(e).__name__}: {e}); logging locally only (CSV + run.json)")
        return None
