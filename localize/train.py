"""Train, evaluate once on test, record: ``python -m localize.train +locale=ja task=ner adapter=lora``.

Orchestration only — every object comes from the config via ``_target_``.
"""
from __future__ import annotations

import logging
import os
import time
import zipfile
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from localize.cli import cli
from localize.hardware import set_threads
from localize.tracking.callbacks import RunHealthCallback, RunStatsCallback, reset_peak_memory
from localize.config import CONF_DIR, job_overrides
from localize.tracking.record import (RECORD, atomic_write_json, build_record, git_state, redact_overrides,
                                      write_test_predictions)
from localize.models.weights import load_checkpoint
from localize.tracking.status import FAILED, TrainingFailed, run_status
from localize.tracking.storage import save_trainable
from localize.tracking.wandb import log_run_end
from localize.validate import check_config
from localize.utils import build, check_writable, instantiate_dict, quiet_libraries, resolved_config

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job; returns the run record (also written to ``<run dir>/run.json``)."""
    check_config(cfg)  # types and ranges first: a wrong value fails here, not after the model loads
    start = time.perf_counter()
    reset_peak_memory()  # this job's peak, not the multirun process's
    git = git_state()  # the code that runs, not whatever is checked out when the run ends
    overrides = job_overrides(cfg)
    out_dir = cfg.paths.output_dir
    check_writable(out_dir)
    set_threads(cfg.get("threads"))
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = build(cfg.data)
    module = build(cfg.module, **datamodule.module_kwargs())
    callbacks = (instantiate_dict(cfg.callbacks) + instantiate_dict(cfg.adapter.get("callbacks"))
                 + instantiate_dict(cfg.task.get("callbacks")))
    loggers = instantiate_dict(cfg.logger)
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    config = resolved_config(cfg)
    for lg in trainer.loggers:
        lg.log_hyperparams(config)
        lg.log_metrics({f"params/{k}": v for k, v in module.param_counts.items()}, step=0)

    ckpt_path = resume_checkpoint(cfg.ckpt_path)
    common = dict(job_type="train", start=start, module=module, datamodule=datamodule, trainer=trainer, git=git,
                  config=config, overrides=redact_overrides(overrides) if overrides is not None else None)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)  # no pickled code
    except TrainingFailed as e:  # the run's outcome (not an interruption): recorded as failed, then raised
        if trainer.is_global_zero:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
            atomic_write_json(os.path.join(out_dir, RECORD), build_record(
                cfg, metrics=metrics, status=FAILED, status_reason=str(e), **common))
        raise
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if module.param_counts["trainable"] == 0:  # nothing trained (in-context prompting): score dev once
        validated = trainer.validate(module, datamodule=datamodule, verbose=False)
        metrics.update(validated[0] if validated else {})
    if cfg.test:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        tested = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True,
                              verbose=False)  # the summary line below prints the headline metrics
        metrics.update(tested[0] if tested else {})

    if not trainer.is_global_zero:
        return {}
    stats = next((c.stats for c in callbacks if isinstance(c, RunStatsCallback)), {})
    storage = save_trainable(module, os.path.join(out_dir, "model"))
    dev_counts = next((c.dev_counts for c in callbacks if isinstance(c, RunHealthCallback)), None)
    status, reason = run_status(metrics, dev_counts, module.label_names, cfg.task.get("monitor"),
                                getattr(module, "collapse_fix", None))
    if reason:
        log.warning("run %s is %s: %s", cfg.run_name, status, reason)
    # localize.runs rebuilds the run from conf/ + the recorded overrides (never from the stored config).
    record = build_record(cfg, metrics=metrics, perf=stats, storage=storage, status=status, status_reason=reason,
                          module_inputs=datamodule.inference_kwargs(), **common)
    for lg in trainer.loggers:
        lg.log_metrics({f"storage/{k}": v for k, v in storage.items()}, step=trainer.global_step)
    write_test_predictions(out_dir, module.test_predictions())  # ids were set by build_record
    atomic_write_json(os.path.join(out_dir, RECORD), record)  # last: a crashed run has none; see "status"
    log_run_end(trainer.loggers, out_dir)  # W&B: artifacts, predictions table, run.json's peak memory
    _print_summary(record, out_dir)
    return record


def resume_checkpoint(path: str | None) -> str | None:
    """A checkpoint file, or a run dir's ``checkpoints/last.ckpt``; one clear error if missing."""
    if not path:
        return None
    candidate = os.path.join(path, "checkpoints", "last.ckpt") if os.path.isdir(path) else path
    if not os.path.isfile(candidate):
        raise FileNotFoundError(
            f"checkpoint '{candidate}' not found: pass resume=<run dir> (with checkpoints/last.ckpt) "
            f"or ckpt_path=<file.ckpt>"
        )
    if not zipfile.is_zipfile(candidate):  # torch.save's format; a truncated copy fails here, not mid-load
        raise ValueError(f"checkpoint '{candidate}' is corrupt or not a Lightning checkpoint: "
                         f"resume from another one (checkpoints/best.ckpt) or retrain")
    load_checkpoint(candidate, mmap=True)  # our message for a crafted pickle (tensors mapped, not read)
    return candidate


HEADLINE = ("f1", "f1_macro", "accuracy", "chrf", "bleu", "placeholder_preservation")


def _print_summary(record: dict[str, Any], run_dir: str) -> None:
    m = record["metrics"]
    shown = {k: v for k, v in m.items() if k.split("/")[0] == "test" and k.split("/")[1] in HEADLINE}
    log.info("run %s finished: %s", record["run_name"], shown)
    print(f"[localize] {record['run_name']}: " + ", ".join(f"{k}={v:.4f}" for k, v in shown.items())
          + f" | trainable {record['params']['trainable_share']:.2%} | stored {record['storage']['stored_mb']:.1f} MB"
          + f" | {record['perf'].get('s_per_epoch', 0):.1f} s/epoch"
          + f" | {record['machine']['precision']}"
          + (f" | {record['status'].upper()}: {record['status_reason']}" if record.get("status_reason") else "")
          + f"\n[localize] run dir: {run_dir}")


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    quiet_libraries()
    import wandb

    try:
        record = train(cfg)
    except TrainingFailed as e:
        if not _multirun():
            raise
        # A sweep goes on past a failed trial (recorded: status failed): NaN, which Optuna marks failed.
        log.error("%s: %s", cfg.run_name, e)
        return float("nan")
    finally:
        wandb.finish()  # a multirun goes on with a clean W&B state even after a crashed job
    metric = record.get("metrics", {}).get(cfg.get("optimized_metric"))
    return metric


def run() -> None:
    """The ``localize-train`` console script (``python -m localize.train`` is the same)."""
    cli(main)


if __name__ == "__main__":
    run()
