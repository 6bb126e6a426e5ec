"""Evaluate a trained run (any method) or the base model on any locale's test split, and record it.

    python -m localize.evaluate run=<run dir>                       # its own test split again
    python -m localize.evaluate run=<run dir> +locale=ko task=ner   # another locale's data
    python -m localize.evaluate run=<run dir> data.path=my.conll    # any local file
    python -m localize.evaluate run=<run dir> ckpt_path=<run dir>/checkpoints/last.ckpt
    python -m localize.evaluate model=e5_small +locale=ja task=ner  # base model, head trained 0 steps
    python -m localize.evaluate run=<run dir> +perturb=noise        # robustness: the drop per perturbation

The evaluated run is rebuilt from ``conf/`` + its recorded overrides (``localize.runs.load_run``); the data
comes from the composed config (task, ``+locale``, ``data.*``) through the normal datamodule and
``trainer.test``. The result is a run record (``run.json``, ``job_type: evaluate``) in its own
dir under ``logs/evals/``.

"Before localization": a backbone with a freshly initialised head scores ~0 span F1 on NER —
a floor, not a baseline (``run=null``: recorded with ``head: untrained``). The meaningful
"before" figure is zero-shot transfer: a run trained on *another* locale evaluated on this one
(the off-diagonal of ``experiments/transfer``).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from localize.cli import cli
from localize.config import CONF_DIR, job_overrides
from localize.runs import RunInfo, load_run, read_run, same_weights
from localize.data.errors import DataError, LabelsUnknownToModel
from localize.data.sources import source_key
from localize.tracking.callbacks import reset_peak_memory
from localize.tracking.record import RECORD, atomic_write_json, build_record, retest_group, write_test_predictions
from localize.tracking.wandb import log_run_end
from localize.validate import check_config
from localize.utils import build, check_writable, instantiate_dict, quiet_libraries, resolved_config

log = logging.getLogger(__name__)

# Data settings that define the test split: left null in conf/evaluate.yaml, they are taken from
# the evaluated run when it is evaluated on the data source it trained on — the same seed and sizes
# give the same test split, so training sentences of an unsplit corpus never leak into the test.
SPLIT_KEYS = ("split_sizes", "max_eval_examples", "cv_folds", "cv_fold", "cv_dev")


def _eval_name(run: str | None, model: str | None, locale: str | None, task: str | None) -> str:
    """Run-dir name of an evaluation: ``eval-<run name>-on-<locale>`` (Hydra resolver)."""
    if run:
        try:
            name = read_run(run).name
        except (OSError, ValueError):  # the real error is raised, with its fix, inside evaluate()
            name = os.path.basename(os.path.normpath(str(run)))
    else:
        name = f"base-{task}-{model}"
    return f"eval-{name}-on-{locale or 'own'}"


OmegaConf.register_new_resolver("localize_eval_name", _eval_name, replace=True)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.run`` (or the base ``cfg.model``) on the configured data; returns the record
    (also written to ``<output dir>/run.json``).

    Raises:
        FileNotFoundError: no such run dir, no ``run.json``, no saved model, no checkpoint.
        ValueError: corrupt weights; ``model=`` naming another base than the run's; a task head
            the run does not have; no ``run=`` and no ``model=``.
        DataError: evaluation data with labels the model was not trained on.
    """
    start = time.perf_counter()
    reset_peak_memory()
    out_dir = cfg.paths.output_dir
    check_writable(out_dir)
    # module.* settings given to evaluate (e.g. module.decoding=viterbi) apply to the rebuilt run too;
    # anything else of the run's model comes from its own recorded overrides.
    inference = [o for o in job_overrides(cfg) or [] if o.lstrip("+~").startswith("module.")]
    allow = bool(cfg.get("allow_degenerate"))
    info = read_run(cfg.run, ckpt_path=cfg.get("ckpt_path"), extra_overrides=inference,
                    allow_degenerate=allow) if cfg.get("run") else None
    _configure(cfg, info)
    check_config(cfg)  # after _configure: the run's values fill the nulls of conf/evaluate.yaml
    pl.seed_everything(int(cfg.data.seed), workers=True)

    datamodule = build(cfg.data)
    try:
        labels = datamodule.label_names if hasattr(datamodule, "label_names") else None
    except DataError as e:
        if info is None:
            raise
        # The reader's own fix (extend data.labels) does not apply: the model's label set is fixed.
        problem = str(getattr(e, "problem", e))
        raise LabelsUnknownToModel(f"{problem}. The model of {info.run_dir} knows only {info.labels}. "
                                   f"Fix: evaluate it on data with that label set (data.path=<file>)", problem) from None
    if info is not None:
        module = load_run(info.run_dir, ckpt_path=cfg.get("ckpt_path"), extra_overrides=inference,
                          allow_degenerate=allow)
        head = "trained"
    else:
        module = build(cfg.module, **datamodule.module_kwargs())
        head = "untrained (0 steps): a floor, not a baseline"
        log.warning("evaluating %s with a randomly initialised head (no run= given)", cfg.model.name)
    loggers = instantiate_dict(cfg.logger)
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=[], logger=loggers or False)
    config = resolved_config(cfg)
    for lg in trainer.loggers:
        lg.log_hyperparams(config)
    tested = trainer.test(module, datamodule=datamodule, verbose=False)  # the summary line below shows them
    metrics = {k: float(v) for k, v in (tested[0] if tested else {}).items()}
    if not trainer.is_global_zero:
        return {}

    record = build_record(
        cfg, job_type="evaluate", metrics=metrics, start=start, module=module, datamodule=datamodule,
        trainer=trainer, config=config,
        evaluated_run=info.run_dir if info else None,
        evaluated_run_name=info.name if info else None,
        ckpt_path=cfg.get("ckpt_path") or (os.path.join(info.model_dir) if info else None),
        head=head,
        train_locale=info.record.get("locale") if info else None,
        adapter=info.record.get("adapter") if info else None,
        seed=info.record.get("seed") if info else int(cfg.seed),
        # What the run itself reported on its own test split, to compare with at a glance.
        run_metrics={k: v for k, v in (info.record.get("metrics") or {}).items() if k.startswith("test/")}
        if info else None,
        labels=list(labels) if labels is not None else None,
        params=(info.record.get("params") if info else None) or module.param_counts,
    )
    if record.get("cv_group") and info is not None and info.record.get("cv_group"):
        # A CV fold re-tested on its own fold (e.g. module.decoding=viterbi): the re-tests of one group's
        # folds pool as a group of their own, which the report pairs with the trained one on the same examples.
        record["cv_group"] = retest_group(info.record["cv_group"], inference)
    clean = module.test_predictions()
    write_test_predictions(out_dir, clean)
    if cfg.get("perturb") is not None:  # after the clean predictions are kept: each test pass replaces them
        from localize.robustness import robustness

        record["robustness"] = robustness(cfg, module, lambda: instantiate(cfg.trainer, callbacks=[], logger=False),
                                          clean, metrics, datamodule.splits["test"], out_dir)
    atomic_write_json(os.path.join(out_dir, RECORD), record)
    log_run_end(trainer.loggers, out_dir)  # W&B: the record artifact, predictions table, run.json's peak memory
    shown = {k: v for k, v in metrics.items() if k in ("test/f1", "test/f1_macro", "test/accuracy")}
    for p in (record.get("robustness") or {}).get("perturbations", []):
        print(f"[localize]   {p['operation']}: drop {p['drop']:+.4f} ({p.get('paired_vs_clean', {}).get('verdict', 'n/a')})"
              if p["drop"] is not None else f"[localize]   {p['operation']}: n/a")
    print(f"[localize] {record['run_name']}: " + ", ".join(f"{k}={v:.4f}" for k, v in shown.items())
          + (f" (run recorded test/f1={record['run_metrics'].get('test/f1', float('nan')):.4f})"
             if info and "test/f1" in shown else ""))
    return record


def _configure(cfg: DictConfig, info: RunInfo | None) -> None:
    """Fill the evaluation config from the evaluated run: its model, adapter, label set, split
    settings, and its locale unless ``+locale`` names another one."""
    with open_dict(cfg):
        if info is None:
            if cfg.get("model") is None:
                raise ValueError("nothing to evaluate: pass run=<run dir> (a trained run), or model=<name> to "
                                 "evaluate the base model with an untrained head")
            cfg.data.seed = cfg.data.seed if cfg.data.seed is not None else cfg.seed
            for key in ("max_length", *SPLIT_KEYS):
                if cfg.data.get(key) is None:
                    del cfg.data[key]  # the datamodule's own default
            return
        run_cfg = info.cfg
        run_base = str(run_cfg.model.name_or_path)
        if cfg.get("model") is not None and not same_weights(str(cfg.model.name_or_path), run_base):
            raise ValueError(f"{info.run_dir} was trained on base model '{run_base}' but model={cfg.model.name} "
                             f"('{cfg.model.name_or_path}') was given: a run is evaluated on its own base; drop model=")
        if cfg.task.head != run_cfg.task.head:
            raise ValueError(f"{info.run_dir} is a {run_cfg.task.name} model ({run_cfg.task.head}) but task="
                             f"{cfg.task.name} needs a {cfg.task.head}: pass task={run_cfg.task.name}")
        cfg.model = OmegaConf.to_container(run_cfg.model, resolve=True)
        cfg.adapter = OmegaConf.to_container(run_cfg.adapter, resolve=True)
        if cfg.get("locale") is None and run_cfg.get("locale") is not None:
            cfg.locale = OmegaConf.to_container(run_cfg.locale, resolve=True)
        cfg.seed = int(run_cfg.seed)
        run_data = run_cfg.data
        if cfg.data.seed is None:
            cfg.data.seed = int(run_data.get("seed", run_cfg.seed))
        if cfg.data.get("max_length") is None:
            cfg.data.max_length = run_data.get("max_length", 256)
        same_source = source_key(cfg.data) == source_key(run_data)
        for key in SPLIT_KEYS:
            if cfg.data.get(key) is None:
                if same_source and run_data.get(key) is not None:
                    cfg.data[key] = run_data[key]
                else:
                    del cfg.data[key]
        if info.labels is not None and cfg.data.get("labels") is None:
            cfg.data.labels = list(info.labels)  # the model's label set, in the model's id order


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> float | None:
    quiet_libraries()
    import wandb

    try:
        record = evaluate(cfg)
    finally:
        wandb.finish()
    return record.get("metrics", {}).get(cfg.task.monitor.replace("val/", "test/"))


def run() -> None:
    """The ``localize-evaluate`` console script (``python -m localize.evaluate`` is the same)."""
    cli(main)


if __name__ == "__main__":
    run()
