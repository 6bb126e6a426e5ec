"""A finished run dir, read in one place: what it holds, and its module rebuilt from ``conf/``.

* ``read_run(run_dir)`` checks a run dir (one error naming the fix for each way it can be broken)
  and recomposes its config from the project's own ``conf/`` plus the overrides the run recorded
  — never by instantiating the config stored in ``run.json``, which anyone can edit: a crafted
  record can at most choose among the project's own configs.
* ``load_run(run_dir)`` rebuilds the LightningModule and loads the trained state
  (``<run>/model/``: a peft folder, or ``trainable.safetensors``; or a Lightning checkpoint).
* ``load_predictor(run_dir)`` pairs it with the run's datamodule: raw text → batch → prediction
  through ``localize.data.inference`` (the path training batches take).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from localize.config import compose
from localize.models.backbones import TINY_RANDOM, same_weights  # noqa: F401 (re-exported)
from localize.models.weights import (attach_peft, load_full_state, load_lightning_checkpoint, read_peft_weights,
                                     rebase_on)
from localize.tracking.record import RECORD
from localize.tracking.status import DEGENERATE, FAILED, FINISHED
from localize.tracking.storage import FULL_WEIGHTS, MODEL_DIR, PEFT_CONFIG  # noqa: F401 (re-exported)
from localize.utils import build

log = logging.getLogger(__name__)

_LABELLED_HEADS = ("token_classification", "sequence_classification")
# Override keys that would let a stored file pick code to call or to download and run.
_UNSAFE_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_", "trust_remote_code")


@dataclass
class RunInfo:
    """What a finished run dir holds.

    Attributes:
        run_dir: absolute path.
        record: ``run.json``.
        cfg: the run's config recomposed from ``conf/`` + ``overrides`` (unresolved).
        overrides: the run's recorded Hydra overrides.
        model_dir: ``<run>/model``.
        kind: ``peft`` (adapter folder), ``full`` (``trainable.safetensors``) or ``checkpoint`` (no
            ``model/``; a Lightning checkpoint given to ``read_run`` is loaded instead).
        labels: the trained label set (None for generative heads).
    """

    run_dir: str
    record: dict[str, Any]
    cfg: DictConfig
    overrides: list[str]
    model_dir: str
    kind: str
    labels: list[str] | None
    peft_config: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return str(self.record.get("run_name") or os.path.basename(self.run_dir))

    @property
    def tokenizer(self) -> str:
        return str(self.cfg.model.tokenizer)

    @property
    def locale(self) -> dict[str, Any] | None:
        loc = self.cfg.get("locale")
        return OmegaConf.to_container(loc, resolve=True) if loc is not None else None


def read_run(run_dir: str, ckpt_path: str | None = None, extra_overrides: Sequence[str] = (),
             allow_degenerate: bool = False) -> RunInfo:
    """Check a run dir, recompose its config and describe it.

    Args:
        run_dir: the folder holding ``run.json``.
        ckpt_path: a Lightning checkpoint that will be loaded instead of ``<run>/model``, which may
            then be missing (``kind: checkpoint``).
        extra_overrides: inference-time settings applied on top of the run's own overrides (e.g.
            ``module.decoding=viterbi``), checked like them.
        allow_degenerate: also read a run whose status is ``degenerate`` (it predicts one label for the
            whole dev set; scoring it measures that outcome, e.g. a continual stage that learned nothing).

    Raises:
        FileNotFoundError: no such dir, no ``run.json`` (unfinished run or not a run dir), or no
            saved model in ``<run>/model``.
        ValueError: an unreadable ``run.json`` or adapter config; a run whose ``status`` is not
            ``finished`` (failed or degenerate); recorded overrides that are unsafe or no longer compose.
    """
    run_dir = os.path.abspath(os.path.expanduser(str(run_dir)))
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run dir '{run_dir}' does not exist: pass run=<a run dir, e.g. "
                                f"logs/runs/<run name>/<time>, the folder that holds run.json>")
    path = os.path.join(run_dir, RECORD)
    if not os.path.exists(path):
        inner = sorted(os.path.dirname(os.path.join(r, RECORD)) for r, _, fs in os.walk(run_dir) if RECORD in fs)
        last = os.path.join(run_dir, "checkpoints", "last.ckpt")
        hint = f" (found one in {inner[0]}: pass that dir)" if inner else (
            " — it crashed, is still running, or is not a run dir: "
            + (f"finish it with python -m localize.train <same overrides> ckpt_path={last}" if os.path.exists(last)
               else "retrain it with python -m localize.train ...") + ", or pass a finished run dir")
        raise FileNotFoundError(f"'{run_dir}' has no {RECORD}, so it is not a finished run{hint}")
    try:
        with open(path) as f:
            record = json.load(f)
        if not isinstance(record, dict):
            raise TypeError("not a JSON object")
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path} is unreadable ({type(e).__name__}: {e}): it is written last and atomically by "
                         f"localize.train, so it was edited or damaged afterwards; retrain the run") from e
    if not (allow_degenerate and record.get("status") == DEGENERATE):
        _check_status(run_dir, record)
    overrides = run_overrides(run_dir, record) + _checked(list(extra_overrides), "the extra overrides")
    cfg = run_config(run_dir, overrides)
    model_dir = os.path.join(run_dir, MODEL_DIR)
    kind = _saved_kind(run_dir, model_dir, ckpt_path)
    peft_config = None
    if kind == "peft":
        import peft

        try:
            peft_config = peft.PeftConfig.from_pretrained(model_dir)
        except (ValueError, TypeError, OSError) as e:
            raise ValueError(f"{os.path.join(model_dir, PEFT_CONFIG)} is unreadable ({e}): retrain the run") from e
    return RunInfo(run_dir=run_dir, record=record, cfg=cfg, overrides=overrides, model_dir=model_dir, kind=kind,
                   labels=_run_labels(run_dir, record, cfg), peft_config=peft_config)


def _check_status(run_dir: str, record: Mapping[str, Any]) -> None:
    """Only a ``finished`` run is loaded (records written before ``status`` existed count as finished)."""
    status = record.get("status", FINISHED)
    if status == FINISHED:
        return
    reason = record.get("status_reason") or "no reason recorded"
    fix = ("retrain it with the fix its reason names (python -m localize.train <same overrides> ...)"
           if status in (FAILED, DEGENERATE) else "retrain it")
    if status == DEGENERATE:
        fix += f" (python -m localize.evaluate run={run_dir} allow_degenerate=true scores it as it is)"
    raise ValueError(f"{run_dir} is not a finished run: its {RECORD} says status '{status}' ({reason}); {fix}, "
                     f"or pass a finished run dir")


def run_overrides(run_dir: str, record: Mapping[str, Any]) -> list[str]:
    """The Hydra overrides the run was composed with: ``run.json["overrides"]``, else Hydra's own
    ``.hydra/overrides.yaml`` (runs recorded before overrides were); each checked to be safe."""
    overrides = record.get("overrides")
    source = f"{os.path.join(run_dir, RECORD)} (overrides)"
    if overrides is None:
        hydra_file = os.path.join(run_dir, ".hydra", "overrides.yaml")
        if not os.path.exists(hydra_file):
            raise ValueError(f"{run_dir} records no overrides (run.json has no 'overrides' and there is no "
                             f".hydra/overrides.yaml), so its model cannot be rebuilt from conf/: retrain it with "
                             f"python -m localize.train ...")
        try:
            with open(hydra_file) as f:  # safe_load: no YAML tag can construct an object (!!python/...)
                overrides, source = yaml.safe_load(f) or [], hydra_file
        except yaml.YAMLError as e:
            raise ValueError(f"{hydra_file} is not a plain YAML list of overrides ({str(e)[:160]}); refused. Restore "
                             f"it from the run's command line, or retrain the run") from e
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ValueError(f"{source} must be a list of Hydra override strings: retrain the run")
    return _checked(overrides, source)


def _checked(overrides: list[str], source: str) -> list[str]:
    for o in overrides:
        if any(k in o for k in _UNSAFE_KEYS):
            raise ValueError(f"{source} holds the override '{o[:80]}', which could make loading the run call code; "
                             f"refused. Remove it from the file, or retrain the run")
    return list(overrides)


def run_config(run_dir: str, overrides: Sequence[str]) -> DictConfig:
    """``conf/train.yaml`` composed with the run's overrides, output dir set to the run dir."""
    try:
        cfg = compose(overrides, config_name="train", out_dir=run_dir)
    except Exception as e:  # a config option renamed or removed since the run was trained
        raise ValueError(f"the overrides of {run_dir} no longer compose with this checkout's conf/ "
                         f"({type(e).__name__}: {str(e)[:300]}): check out the commit in its run.json (git.commit) "
                         f"or retrain") from e
    return cfg


def _saved_kind(run_dir: str, model_dir: str, ckpt_path: str | None = None) -> str:
    if os.path.exists(os.path.join(model_dir, PEFT_CONFIG)):
        return "peft"
    if os.path.exists(os.path.join(model_dir, FULL_WEIGHTS)):
        return "full"
    if ckpt_path:
        return "checkpoint"  # load_run reads the checkpoint (its own error when it is missing)
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    ckpts = sorted(f for f in os.listdir(ckpt_dir) if f.endswith(".ckpt")) if os.path.isdir(ckpt_dir) else []
    best = os.path.join(ckpt_dir, "best.ckpt" if "best.ckpt" in ckpts else ckpts[0]) if ckpts else ""
    alt = (f"; its checkpoint can still be evaluated: python -m localize.evaluate run={run_dir} ckpt_path={best}"
           if ckpts else "")
    raise FileNotFoundError(f"{model_dir} holds no saved model ({PEFT_CONFIG} + adapter weights, or "
                            f"{FULL_WEIGHTS}). Fix: retrain the run (python -m localize.train ...){alt}")


def _run_labels(run_dir: str, record: Mapping[str, Any], cfg: DictConfig) -> list[str] | None:
    """The trained label set: the record's, else the run's training data read again through its own
    (recomposed) data config — deterministic: same files, same seed."""
    for labels in (record.get("labels"), (record.get("results") or {}).get("labels")):
        if labels:  # any head: a causal LM scoring label words (adapter=icl) has labels too
            return [str(x) for x in labels]
    if cfg.task.get("head") not in _LABELLED_HEADS:
        return None
    try:
        return list(build(cfg.data).label_names)
    except Exception as e:
        raise ValueError(f"cannot recover the label set of {run_dir}: run.json has none and the training data "
                         f"cannot be read ({e}); restore the training data or retrain") from e


def base_identity(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """What makes two runs share a backbone: weights, config changes, head type — and, for the
    randomly initialised ``tiny_random``, the seed that drew its weights."""
    cfg = OmegaConf.create(cfg) if not isinstance(cfg, DictConfig) else cfg
    ident = {"name_or_path": str(cfg.model.name_or_path),
             "config_overrides": OmegaConf.to_container(cfg.model.config_overrides, resolve=True)
             if cfg.model.get("config_overrides") else {},
             "revision": cfg.model.get("revision"), "head": str(cfg.task.head)}
    if ident["name_or_path"] == TINY_RANDOM:
        ident["seed"] = int(cfg.seed)
    return ident


# --------------------------------------------------------------------------- one run
def build_untrained(info: RunInfo, adapter: bool = True):
    """The run's LightningModule exactly as ``localize.train`` built it before training.

    Torch's RNG is seeded with the run's seed around the build (and restored after), so a
    ``tiny_random`` backbone gets the same random weights as in training.
    """
    kwargs: dict[str, Any] = {"label_names": info.labels} if info.labels is not None else {}
    kwargs.update(info.record.get("module_inputs") or {})  # what the data gave the module (localize.train)
    if not adapter:
        kwargs["adapter"] = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(info.cfg.seed))
        return build(info.cfg.module, **kwargs)


def load_run(run_dir: str, ckpt_path: str | None = None, extra_overrides: Sequence[str] = (),
             allow_degenerate: bool = False):
    """Rebuild a run's LightningModule and load its trained state (for ``trainer.test`` or
    ``load_predictor``).

    Peft runs: the plain backbone is built and the adapter folder loaded with
    ``PeftModel.from_pretrained`` (which also restores what a fresh config would not, e.g.
    AdaLoRA's pruned ``rank_pattern``). Full FT runs: ``trainable.safetensors`` is loaded into the
    backbone (all weights, or the trainable part over the base weights).

    Args:
        run_dir: a finished run dir (with ``run.json`` and ``model/``).
        ckpt_path: load this Lightning checkpoint instead of ``<run>/model``.
        extra_overrides: inference-time module settings (``module.decoding=viterbi``), see ``read_run``.
        allow_degenerate: see ``read_run``.

    Returns:
        The module in eval mode, with ``run_info`` (a ``RunInfo``) attached.

    Raises:
        FileNotFoundError / ValueError: see ``read_run``; corrupt weights; weights that do not fit.
    """
    info = read_run(run_dir, ckpt_path=ckpt_path, extra_overrides=extra_overrides, allow_degenerate=allow_degenerate)
    module = build_untrained(info, adapter=bool(ckpt_path) or info.kind != "peft")
    _merged_base(module, info)
    if ckpt_path:
        load_lightning_checkpoint(module, ckpt_path)
    elif info.kind == "peft":
        attach_peft(module, info.model_dir, info.peft_config, str(info.cfg.model.name_or_path))
    else:
        load_full_state(module, os.path.join(info.model_dir, FULL_WEIGHTS), str(info.cfg.model.name_or_path))
    module.run_info = info
    return module.eval()


def _merged_base(module, info: RunInfo) -> None:
    """A run trained with ``init_merged=true`` stands on its ``init_from`` run merged (see
    ``localize.models.weights.rebase_on``): rebuild that base (recursively) before its own weights load."""
    base_run = info.cfg.get("init_from") if info.cfg.get("init_merged") else None
    if not base_run:
        return
    try:
        source = load_run(str(base_run), allow_degenerate=True)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{info.run_dir} was trained on the merged weights of init_from={base_run} "
                                f"(init_merged=true), which cannot be read ({e}). Fix: restore that run dir at "
                                f"that path, or retrain {info.run_dir}") from e
    rebase_on(module, source)


def build_datamodule(info: RunInfo, **settings: Any):
    """The run's datamodule with its trained label set; ``settings`` replace data settings for
    inference (``locale``, ``segmenter``, ``eval_batch_size``). Reads no data until asked."""
    kwargs = {"labels": info.labels} if info.labels is not None else {}
    return build(info.cfg.data, **kwargs, **{k: v for k, v in settings.items() if v is not None})


@dataclass
class Predictor:
    """A run's module and datamodule: ``predict_texts`` encodes with the datamodule, predicts with
    the module's ``predict_step`` and decodes with the datamodule again."""

    module: Any
    datamodule: Any

    @property
    def tokenizer(self):
        return self.datamodule.tokenizer

    @property
    def label_names(self) -> list[str] | None:
        return self.module.label_names

    def predict_texts(self, texts: Sequence[str], batch_size: int | None = None) -> list[dict[str, Any]]:
        from localize.data.inference import predict_texts

        self.module.eval()
        return predict_texts(self.datamodule, lambda batch: self.module.predict_step(batch, 0), texts, batch_size,
                             device=self.module.device)


def load_predictor(run_dir: str, locale: Mapping[str, Any] | None = None, segmenter: str | None = None,
                   batch_size: int | None = None, ckpt_path: str | None = None,
                   extra_overrides: Sequence[str] = ()) -> Predictor:
    """``load_run`` + the run's datamodule, ready for raw text.

    Args:
        locale: another locale config's text handling (default: the run's own locale).
        segmenter: NER word segmenter override (``char``, ``fugashi``, ``whitespace``...).
        batch_size: texts per forward pass.
        extra_overrides: inference-time module settings (``module.decoding=argmax``), see ``read_run``.
    """
    module = load_run(run_dir, ckpt_path=ckpt_path, extra_overrides=extra_overrides)
    data = build_datamodule(module.run_info, locale=dict(locale) if locale else None, segmenter=segmenter,
                            eval_batch_size=batch_size)
    return Predictor(module, data)


__all__ = ["RunInfo", "read_run", "run_overrides", "run_config", "load_run", "load_predictor", "Predictor",
           "build_untrained", "build_datamodule", "base_identity", "same_weights", "read_peft_weights",
           "MODEL_DIR", "PEFT_CONFIG", "FULL_WEIGHTS"]
