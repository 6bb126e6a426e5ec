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

from localize.tracking.callbacks import RunStatsCallback, peak_memory_mb, peak_rss_scope, reset_peak_memory
from localize.tracking.record import RECORD, atomic_write_json, git_state, machine, versions
from localize.tracking.storage import save_trainable
from localize.tracking.metrics import SEQEVAL_MODE
from localize.utils import build, check_writable, instantiate_dict, quiet_libraries, resolved_config

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job; returns the run record (also written to ``<run dir>/run.json``)."""
    start = time.perf_counter()
    reset_peak_memory()  # this job's peak, not the multirun process's
    git = git_state()  # the code that runs, not whatever is checked out when the run ends
    out_dir = cfg.paths.output_dir
    check_writable(out_dir)
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
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        tested = trainer.test(module, datamodule=datamodule, ckpt_path=best or None)
        metrics.update(tested[0] if tested else {})

    if not trainer.is_global_zero:
        return {}
    stats = next((c.stats for c in callbacks if isinstance(c, RunStatsCallback)), {})
    storage = save_trainable(module, os.path.join(out_dir, "model"))
    record = {
        "run_name": cfg.run_name,
        "task": cfg.task.name,
        "locale": cfg.get("locale", {}).get("code") if cfg.get("locale") else None,
        "model": cfg.model.name,
        "adapter": cfg.adapter.name,
        "seed": cfg.seed,
        "tags": list(cfg.tags),
        "metrics": metrics,
        "results": module.extra_results(),
        "labels": module.label_names,
        "params": module.param_counts,
        "storage": storage,
        "perf": {**stats, **peak_memory_mb(), "peak_rss_scope": peak_rss_scope(), "wall_s": time.perf_counter() - start},
        "data": getattr(datamodule, "data_info", {}),
        "scoring": SEQEVAL_MODE if cfg.task.name == "ner" else None,
        "wandb_id": next((lg.experiment.id for lg in trainer.loggers
                          if isinstance(getattr(lg.experiment, "id", None), str)), None),
        "git": git,
        "versions": versions(),
        "machine": machine(),
        "config": config,
    }
    for lg in trainer.loggers:
        lg.log_metrics({f"storage/{k}": v for k, v in storage.items()}, step=trainer.global_step)
    atomic_write_json(os.path.join(out_dir, RECORD), record)  # last: its presence means "finished"
    _print_summary(record)
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
    return candidate


HEADLINE = ("f1", "f1_macro", "accuracy", "chrf", "bleu", "placeholder_preservation")


def _print_summary(record: dict[str, Any]) -> None:
    m = record["metrics"]
    shown = {k: v for k, v in m.items() if k.split("/")[0] == "test" and k.split("/")[1] in HEADLINE}
    log.info("run %s finished: %s", record["run_name"], shown)
    print(f"[localize] {record['run_name']}: " + ", ".join(f"{k}={v:.4f}" for k, v in shown.items())
          + f" | trainable {record['params']['trainable_share']:.2%} | stored {record['storage']['stored_mb']:.1f} MB"
          + f" | {record['perf'].get('s_per_epoch', 0):.1f} s/epoch")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    quiet_libraries()
    import wandb

    try:
        record = train(cfg)
    finally:
        wandb.finish()  # a multirun goes on with a clean W&B state even after a crashed job
    metric = record.get("metrics", {}).get(cfg.get("optimized_metric"))
    return metric


if __name__ == "__main__":
    main()
