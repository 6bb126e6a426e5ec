"""Trained runs as inference models: one run of any method, or many adapters on one backbone.

* ``read_run(run_dir)`` checks a run dir and says what it holds (record, resolved config, saved
  model kind, label set, tokenizer), with one error naming the fix for each way it can be broken.
* ``load_run(run_dir)`` rebuilds the run's LightningModule from its own config and loads the
  trained state (``<run>/model/``: a peft folder, or ``trainable.safetensors`` for full FT) —
  the module ``trainer.test`` and ``predict_texts`` run on.
* ``AdapterBank`` loads a backbone once and adds one peft adapter per locale from run dirs;
  ``set_adapter`` switches locales without touching the backbone. Each adapter keeps its own
  task head (peft ``modules_to_save`` holds one head copy per adapter), so label sets may differ.
* ``storage_report`` compares N full models with one backbone + N adapters.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from localize.models.backbones import TINY_RANDOM, build_backbone, enable_prefix_cache_kwarg, load_tokenizer, resolve_path
from localize.tracking.record import RECORD

log = logging.getLogger(__name__)

MODEL_DIR = "model"
PEFT_CONFIG = "adapter_config.json"
FULL_WEIGHTS = "trainable.safetensors"
REDACTED = "***"  # tracking.record.redact blanks any key containing "token" — "tokenizer" included
_PEFT_PREFIX = "base_model.model."
_LABELLED_HEADS = ("token_classification", "sequence_classification")


@dataclass
class RunInfo:
    """What a finished run dir holds.

    Attributes:
        run_dir: absolute path.
        record: ``run.json``.
        cfg: the run's fully resolved config (``run.json["config"]``).
        model_dir: ``<run>/model``.
        kind: ``peft`` (adapter folder) or ``full`` (``trainable.safetensors``).
        labels: the trained label set (None for generative heads).
        tokenizer: the tokenizer name/path the run trained with.
    """

    run_dir: str
    record: dict[str, Any]
    cfg: DictConfig
    model_dir: str
    kind: str
    labels: list[str] | None
    tokenizer: str
    peft_config: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return str(self.record.get("run_name") or os.path.basename(self.run_dir))

    @property
    def locale(self) -> dict[str, Any] | None:
        loc = self.cfg.get("locale")
        return OmegaConf.to_container(loc, resolve=True) if loc is not None else None


def read_run(run_dir: str) -> RunInfo:
    """Check a run dir and describe it.

    Raises:
        FileNotFoundError: no such dir, no ``run.json`` (unfinished run or not a run dir), or no
            saved model in ``<run>/model``.
        ValueError: an unreadable ``run.json`` or adapter config.
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
        cfg = OmegaConf.create(record["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is unreadable ({type(e).__name__}: {e}): it is written last and atomically by "
                         f"localize.train, so it was edited or damaged afterwards; retrain the run") from e
    model_dir = os.path.join(run_dir, MODEL_DIR)
    if os.path.exists(os.path.join(model_dir, PEFT_CONFIG)):
        kind = "peft"
    elif os.path.exists(os.path.join(model_dir, FULL_WEIGHTS)):
        kind = "full"
    else:
        ckpts = sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) if os.path.isdir(
            os.path.join(run_dir, "checkpoints")) else []
        alt = (f", or load a Lightning checkpoint instead: ckpt_path={os.path.join(run_dir, 'checkpoints', ckpts[0])}"
               if ckpts else "")
        raise FileNotFoundError(f"{model_dir} holds no saved model ({PEFT_CONFIG} + adapter weights, or "
                                f"{FULL_WEIGHTS}): retrain the run (python -m localize.train ...){alt}")
    peft_config = None
    if kind == "peft":
        import peft

        try:
            peft_config = peft.PeftConfig.from_pretrained(model_dir)
        except (ValueError, TypeError, OSError) as e:
            raise ValueError(f"{os.path.join(model_dir, PEFT_CONFIG)} is unreadable ({e}): retrain the run") from e
    tokenizer = _run_tokenizer(run_dir, cfg)
    _unredact(cfg, run_dir, tokenizer, peft_config)
    return RunInfo(run_dir=run_dir, record=record, cfg=cfg, model_dir=model_dir, kind=kind,
                   labels=_run_labels(run_dir, record, cfg), tokenizer=tokenizer, peft_config=peft_config)


def _redacted_paths(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, DictConfig):
        return [p for k in node.keys() for p in _redacted_paths(node._get_node(k), f"{prefix}{k}.")]
    if OmegaConf.is_list(node):
        return []
    return [prefix[:-1]] if node._value() == REDACTED else []


def _unredact(cfg: DictConfig, run_dir: str, tokenizer: str, peft_config: Any) -> None:
    """Put back config values the record's secret filter blanked although they are no secret.

    The filter matches any key containing "token": ``tokenizer``, ``max_new_tokens``,
    ``num_virtual_tokens`` come back as "***", and rebuilding the module from them fails. Only
    such keys are restored: from Hydra's ``.hydra/config.yaml`` when the run has one, else from
    the adapter's own config (peft keys), else the tokenizer name; the rest are dropped, so the
    class default applies (logged).
    """
    hydra_path = os.path.join(run_dir, ".hydra", "config.yaml")
    hydra_cfg = OmegaConf.load(hydra_path) if os.path.exists(hydra_path) else None
    for path in _redacted_paths(cfg):
        leaf = path.rsplit(".", 1)[-1]
        if not (leaf.endswith("tokenizer") or leaf.endswith("tokens")):
            continue  # a real secret (api key, hf token...) stays blank
        value = None
        if hydra_cfg is not None:
            try:
                value = OmegaConf.select(hydra_cfg, path, throw_on_resolution_failure=False)
            except Exception:
                value = None
        if value in (None, REDACTED) and leaf.endswith("tokenizer"):
            value = tokenizer
        if value in (None, REDACTED) and peft_config is not None and path.startswith(("adapter.peft.", "module.adapter.")):
            value = getattr(peft_config, leaf, None)
        parent_path, _, key = path.rpartition(".")
        parent = OmegaConf.select(cfg, parent_path) if parent_path else cfg
        with open_dict(parent):
            if value in (None, REDACTED):
                log.warning("%s: config value %s is blanked in %s and cannot be recovered; using the default",
                            run_dir, path, RECORD)
                del parent[key]
            else:
                parent[key] = value


def _run_labels(run_dir: str, record: dict[str, Any], cfg: DictConfig) -> list[str] | None:
    """The trained label set: the record, else the checkpoint's hyperparameters, else the training
    data read again through the run's own data config (deterministic: same files, same seed)."""
    if cfg.get("task", {}).get("head") not in _LABELLED_HEADS:
        return None
    for labels in (record.get("labels"), (record.get("results") or {}).get("labels")):
        if labels:
            return list(labels)
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    for name in ("best.ckpt", "last.ckpt"):
        path = os.path.join(ckpt_dir, name)
        if os.path.exists(path):
            try:
                hp = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("hyper_parameters", {})
                if hp.get("label_names"):
                    return list(hp["label_names"])
            except Exception as e:  # a damaged checkpoint: fall through to the data
                log.warning("cannot read labels from %s: %s", path, e)
    from localize.utils import build

    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    data_cfg["tokenizer"] = _run_tokenizer(run_dir, cfg)
    try:
        return list(build(OmegaConf.create(data_cfg)).label_names)
    except Exception as e:
        raise ValueError(f"cannot recover the label set of {run_dir}: run.json has none, no checkpoint is left "
                         f"and the training data cannot be read ({e}); restore {ckpt_dir} or the training data") from e


def _run_tokenizer(run_dir: str, cfg: DictConfig) -> str:
    """The run's tokenizer. ``run.json`` has it blanked by the secret filter (the key contains
    "token"), so it is read from Hydra's ``.hydra/config.yaml``, else from the run's model config
    file in ``conf/model`` (with the run's ``name_or_path``), else it is the model itself."""
    value = cfg.get("model", {}).get("tokenizer")
    if value and value != REDACTED:
        return str(value)
    hydra_cfg = os.path.join(run_dir, ".hydra", "config.yaml")
    if os.path.exists(hydra_cfg):
        try:
            value = OmegaConf.select(OmegaConf.load(hydra_cfg), "model.tokenizer")
            if value and value != REDACTED:
                return str(value)
        except Exception:  # an interpolation that needs Hydra's runtime: try the model file
            pass
    name = cfg.get("model", {}).get("name")
    node = _model_config(str(name)) if name else None
    if node is not None and "tokenizer" in node:
        node.name_or_path = str(cfg.model.name_or_path)  # ${.name_or_path} follows the run's weights
        return str(node.tokenizer)
    return str(cfg.model.name_or_path)


def _model_config(name: str, conf_dir: str | None = None) -> DictConfig | None:
    """``conf/model/<name>.yaml`` with its defaults merged (``_self_`` last unless placed).

    Read directly rather than through ``hydra.compose``: this may run inside a Hydra job, whose
    global state must not be reset.
    """
    conf_dir = conf_dir or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "conf", "model"))
    path = os.path.join(conf_dir, f"{name}.yaml")
    if not os.path.exists(path):
        return None
    own = OmegaConf.load(path)
    defaults = list(own.pop("defaults", []) or [])
    if "_self_" not in defaults:
        defaults.append("_self_")
    merged = OmegaConf.create({})
    for item in defaults:
        part = own if item == "_self_" else _model_config(str(item), conf_dir)
        if part is not None:
            merged = OmegaConf.merge(merged, part)
    OmegaConf.set_struct(merged, False)
    return merged


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


def _same_weights(a: str, b: str) -> bool:
    """Same backbone weights: same name, or names resolving to the same local folder."""
    if a == b:
        return True
    try:
        return os.path.realpath(resolve_path(a)) == os.path.realpath(resolve_path(b))
    except Exception:  # an embedded model that cannot be converted here
        return False


# --------------------------------------------------------------------------- one run
def build_untrained(info: RunInfo, adapter: bool = True):
    """The run's LightningModule exactly as ``localize.train`` built it before training.

    Torch's RNG is seeded with the run's seed around the build (and restored after), so a
    ``tiny_random`` backbone gets the same random weights as in training.
    """
    from localize.utils import build

    kwargs: dict[str, Any] = {"label_names": info.labels} if info.labels is not None else {}
    if not adapter:
        kwargs["adapter"] = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(info.cfg.seed))
        return build(info.cfg.module, **kwargs)


def load_run(run_dir: str, ckpt_path: str | None = None, locale: Mapping[str, Any] | None = None,
             **options: Any):
    """Rebuild a run's LightningModule and load its trained state, ready for ``trainer.test`` and
    ``predict_texts``.

    Peft runs: the plain backbone is built from the run's config and the adapter folder is loaded
    with ``PeftModel.from_pretrained`` (which also restores what a fresh config would not, e.g.
    AdaLoRA's pruned ``rank_pattern``). Full FT runs: ``trainable.safetensors`` is loaded into the
    backbone (all weights, or the trainable part over the base weights).

    Args:
        run_dir: a finished run dir (with ``run.json`` and ``model/``).
        ckpt_path: load this Lightning checkpoint instead of ``<run>/model``.
        locale: locale config for raw-text inference (default: the run's locale).
        **options: inference options for ``prepare_inference`` (``segmenter``, ``batch_size``).

    Returns:
        The module in eval mode, with ``run_info`` (a ``RunInfo``) attached.

    Raises:
        FileNotFoundError / ValueError: see ``read_run``; corrupt weights; weights that do not fit.
    """
    info = read_run(run_dir)
    if ckpt_path:
        module = build_untrained(info)
        _load_lightning_checkpoint(module, ckpt_path)
    elif info.kind == "peft":
        module = build_untrained(info, adapter=False)
        _attach_peft(module, info)
    else:
        module = build_untrained(info)
        _load_full_state(module, info)
    module.run_info = info
    data = info.cfg.get("data", {})
    opts = {k: data.get(k) for k in ("max_length", "max_chars", "truncation") if data.get(k) is not None}
    return module.prepare_inference(load_tokenizer(info.tokenizer), dict(locale or info.locale or {}),
                                    **{**opts, **options})


def _attach_peft(module, info: RunInfo) -> None:
    import peft

    from localize.models.backbones import count_parameters

    _read_peft_weights(info)  # a corrupt file gets our message, not a deep safetensors error
    saved_base = getattr(info.peft_config, "base_model_name_or_path", None)
    if saved_base and not (_same_weights(saved_base, str(info.cfg.model.name_or_path))
                           or os.path.basename(saved_base.rstrip("/")) ==
                           os.path.basename(resolve_path(str(info.cfg.model.name_or_path)).rstrip("/"))):
        log.warning("adapter_config.json names base '%s', the run's config '%s'", saved_base, info.cfg.model.name_or_path)
    base = module.model
    if info.peft_config.is_prompt_learning:
        enable_prefix_cache_kwarg(base)
    try:
        module.model = peft.PeftModel.from_pretrained(base, info.model_dir)
    except RuntimeError as e:  # size mismatch
        raise ValueError(f"the adapter in {info.model_dir} does not fit the backbone built from the run's config "
                         f"({str(e)[:300]}): run.json and model/ come from different runs; retrain") from e
    module.param_counts = count_parameters(module.model)
    module.strict_loading = False


def _corrupt(path: str, e: Exception) -> ValueError:
    return ValueError(f"{path} is corrupt or truncated ({type(e).__name__}: {str(e)[:200]}): retrain the run, or "
                      f"load a Lightning checkpoint instead with ckpt_path=<run>/checkpoints/best.ckpt")


def _read_peft_weights(info: RunInfo) -> dict[str, torch.Tensor]:
    from peft.utils import load_peft_weights

    try:
        return load_peft_weights(info.model_dir, device="cpu")
    except Exception as e:  # SafetensorError, truncated file, missing weights file
        raise _corrupt(os.path.join(info.model_dir, "adapter_model.safetensors"), e) from e


def _load_full_state(module, info: RunInfo) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = os.path.join(info.model_dir, FULL_WEIGHTS)
    try:
        with safe_open(path, framework="pt") as f:
            saved_base = (f.metadata() or {}).get("base_model")
        state = load_file(path)
    except Exception as e:
        raise _corrupt(path, e) from e
    base = str(info.cfg.module.get("base_model") or info.cfg.model.name_or_path)
    if saved_base and not _same_weights(saved_base, base):
        raise ValueError(f"{path} was trained on base model '{saved_base}' but the run's config says '{base}': "
                         f"run.json and model/ come from different runs")
    try:
        missing, unexpected = module.model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise ValueError(f"{path} does not fit the model built from the run's config ({str(e)[:300]}); retrain") from e
    trainable = {n for n, p in module.model.named_parameters() if p.requires_grad}
    lost = [k for k in missing if k in trainable or module.strict_loading]
    lost = [k for k in lost if k in dict(module.model.named_parameters())]  # buffers are rebuilt, not stored
    if unexpected or lost:
        raise ValueError(f"{path} does not match the run's model: unexpected {unexpected[:3]}, missing {lost[:3]}; "
                         f"retrain the run")


def _load_lightning_checkpoint(module, ckpt_path: str) -> None:
    if not os.path.isfile(ckpt_path):
        raise FileNotFoundError(f"checkpoint '{ckpt_path}' not found: pass ckpt_path=<run dir>/checkpoints/best.ckpt "
                                f"(or leave it out to load <run dir>/model)")
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        state = ckpt["state_dict"]
    except Exception as e:
        raise _corrupt(ckpt_path, e) from e
    module.on_load_checkpoint(ckpt)  # refuses a checkpoint of another base model
    try:
        module.load_state_dict(state, strict=module.strict_loading)
    except RuntimeError as e:
        raise ValueError(f"{ckpt_path} does not fit the run's model ({str(e)[:300]}): use the checkpoint of "
                         f"this run") from e


# --------------------------------------------------------------------------- many adapters
@dataclass
class _Adapter:
    info: RunInfo
    labels: list[str] | None
    locale: dict[str, Any]
    options: dict[str, Any]


class AdapterBank:
    """One backbone in memory, one peft adapter (+ its own head) per locale.

    Args:
        base_name_or_path: the backbone every adapter was trained on (``e5_small``, a folder...).
        head: ``token_classification`` or ``sequence_classification``.
        label_names: label set of the base head (None: the first adapter's). Each adapter brings
            its own head weights, resized to its own label count.
        config_overrides: backbone config changes (``tiny_random``'s tiny config).
        seed: ``tiny_random`` only — the seed that drew the random backbone (the runs' seed).
        revision: hub revision.

    Example::

        bank = AdapterBank.from_runs({"ja": "logs/runs/a/..", "ko": "logs/runs/b/.."})
        bank.predict_texts(["東京に行く"], "ja"); bank.predict_texts(["서울"], "ko")
    """

    def __init__(self, base_name_or_path: str, head: str, label_names: Sequence[str] | None = None, *,
                 config_overrides: Mapping[str, Any] | None = None, seed: int | None = None,
                 revision: str | None = None) -> None:
        if head not in _LABELLED_HEADS:
            raise ValueError(f"the adapter bank serves {list(_LABELLED_HEADS)} adapters, not {head}: serve a "
                             f"translation run on its own (python -m localize.predict run=<run dir>)")
        self.base_name_or_path, self.head = str(base_name_or_path), head
        self.config_overrides = dict(config_overrides or {})
        self.seed, self.revision = seed, revision
        self.label_names = list(label_names) if label_names is not None else None
        self.adapters: dict[str, _Adapter] = {}
        self.model: nn.Module | None = None  # the PeftModel, once an adapter is added
        self.backbone_loads = 0
        self._base: nn.Module | None = None
        self._tokenizers: dict[str, Any] = {}
        self.active: str | None = None
        if self.label_names is not None:
            self._load_backbone()

    @classmethod
    def from_runs(cls, runs: Mapping[str, str], **kwargs: Any) -> "AdapterBank":
        """A bank for ``{name: run dir}``; the backbone is the first run's base."""
        if not runs:
            raise ValueError("no adapters given: pass adapters.<locale>=<run dir> (at least one)")
        first = read_run(next(iter(runs.values())))
        ident = base_identity(first.cfg)
        bank = cls(ident["name_or_path"], ident["head"], config_overrides=ident["config_overrides"],
                   seed=ident.get("seed"), revision=ident["revision"], **kwargs)
        for name, run_dir in runs.items():
            bank.add(name, run_dir)
        return bank

    def _identity(self) -> dict[str, Any]:
        ident = {"name_or_path": self.base_name_or_path, "config_overrides": self.config_overrides,
                 "revision": self.revision, "head": self.head}
        if self.base_name_or_path == TINY_RANDOM:
            ident["seed"] = self.seed
        return ident

    def _load_backbone(self) -> None:
        labels = self.label_names
        kwargs = {"num_labels": len(labels), "id2label": dict(enumerate(labels))} if labels else {}
        with torch.random.fork_rng(devices=[]):
            if self.seed is not None:
                torch.manual_seed(int(self.seed))  # tiny_random: the runs' random backbone
            self._base = build_backbone(self.base_name_or_path, self.head, config_overrides=self.config_overrides,
                                        revision=self.revision, **kwargs)
        self._base.eval()
        self.backbone_loads += 1

    def add(self, name: str, run_dir: str, locale: Mapping[str, Any] | None = None, **options: Any) -> None:
        """Load the adapter of ``run_dir`` under ``name`` (typically the locale code).

        Raises:
            ValueError: a full fine-tune (not an adapter), an adapter of another base model, a
                prompt-learning adapter mixed with weight adapters, a name already taken.
        """
        import peft

        if name in self.adapters:
            raise ValueError(f"adapter '{name}' is already loaded (from {self.adapters[name].info.run_dir})")
        info = read_run(run_dir)
        if info.kind != "peft":
            raise ValueError(f"{info.run_dir} is a full fine-tune ({FULL_WEIGHTS}), not an adapter: serve it on its "
                             f"own (python -m localize.predict run={info.run_dir}) or train it with adapter=lora")
        mine, theirs = self._identity(), base_identity(info.cfg)
        diff = {k: (theirs.get(k), v) for k, v in mine.items()
                if theirs.get(k) != v and not (k == "name_or_path" and _same_weights(theirs[k], v))}
        if diff:
            raise ValueError(
                f"adapter {info.run_dir} was trained on a different base model than this bank's "
                f"'{self.base_name_or_path}' (run vs bank: {diff}): an adapter only works on the exact backbone "
                f"it was trained on — start another bank for that base, or retrain the adapter on "
                f"model.name_or_path={self.base_name_or_path}")
        weights = _read_peft_weights(info)
        if self._base is None:
            self.label_names = info.labels
            self._load_backbone()
        try:
            if self.model is None:
                if info.peft_config.is_prompt_learning:
                    enable_prefix_cache_kwarg(self._base)
                _fit_head_shapes(self._base, weights, None)
                self.model = peft.PeftModel.from_pretrained(self._base, info.model_dir, adapter_name=name)
            else:
                config = peft.PeftConfig.from_pretrained(info.model_dir)
                if config.is_prompt_learning != self.model.peft_config[next(iter(self.adapters))].is_prompt_learning \
                        or config.peft_type != next(iter(self.model.peft_config.values())).peft_type:
                    raise ValueError(f"{info.run_dir} holds a {config.peft_type} adapter but this bank serves "
                                     f"{next(iter(self.model.peft_config.values())).peft_type} adapters: peft keeps "
                                     f"one adapter type per model; use one bank per adapter type")
                config.inference_mode = True
                self.model.add_adapter(name, config)
                _fit_head_shapes(self.model, weights, name)
                self.model.load_adapter(info.model_dir, adapter_name=name)
        except RuntimeError as e:  # shape mismatch of the adapter weights themselves
            raise ValueError(f"adapter {info.run_dir} does not fit this bank's backbone '{self.base_name_or_path}' "
                             f"({str(e)[:300]}): it was trained on another base model") from e
        self.model.eval()
        data = info.cfg.get("data", {})
        opts = {k: data.get(k) for k in ("max_length", "max_chars", "truncation") if data.get(k) is not None}
        self.adapters[name] = _Adapter(info, info.labels, dict(locale or info.locale or {}), {**opts, **options})
        if info.tokenizer not in self._tokenizers:
            self._tokenizers[info.tokenizer] = load_tokenizer(info.tokenizer)
        if self.active is None:
            self.set_adapter(name)
        else:
            self.model.set_adapter(self.active)  # load_adapter leaves the active one alone; be explicit

    def set_adapter(self, name: str) -> None:
        """Make ``name`` the active adapter (and head); the backbone stays as it is."""
        if name not in self.adapters:
            raise KeyError(f"no adapter '{name}' in this bank (loaded: {sorted(self.adapters)}): "
                           f"add it with adapters.{name}=<run dir>")
        if name != self.active or self.model.active_adapter != name:
            self.model.set_adapter(name, inference_mode=True) if _takes_inference_mode(self.model) \
                else self.model.set_adapter(name)
        self.active = name

    def predict_texts(self, texts: Sequence[str], name: str | None = None,
                      batch_size: int | None = None) -> list[dict[str, Any]]:
        """Tag/classify ``texts`` with adapter ``name`` (default: the active one)."""
        from localize.models.seq_cls import classify_texts
        from localize.models.token_cls import tag_texts

        self.set_adapter(name or self.active)
        a = self.adapters[self.active]
        tok = self._tokenizers[a.info.tokenizer]
        batch_size = batch_size or a.options.get("batch_size", 32)
        if self.head == "token_classification":
            return tag_texts(self.model, tok, a.labels, texts, locale=a.locale, max_length=a.options.get("max_length", 256),
                             segmenter=a.options.get("segmenter"), batch_size=batch_size)
        return classify_texts(self.model, tok, a.labels, texts, locale=a.locale,
                              max_length=a.options.get("max_length", 256), max_chars=a.options.get("max_chars"),
                              truncation=a.options.get("truncation", "head"), batch_size=batch_size)

    def for_locale(self, name: str) -> "_BankView":
        """An object with ``predict_texts(texts)`` bound to one adapter (what ``localize.predict`` calls)."""
        if name not in self.adapters:
            self.set_adapter(name)  # raises the KeyError with the fix
        return _BankView(self, name)

    def storage(self) -> dict[str, Any]:
        """``storage_report`` for the loaded adapters."""
        return storage_report({n: a.info.run_dir for n, a in self.adapters.items()})


@dataclass
class _BankView:
    bank: AdapterBank
    name: str

    def predict_texts(self, texts: Sequence[str], batch_size: int | None = None) -> list[dict[str, Any]]:
        return self.bank.predict_texts(texts, self.name, batch_size=batch_size)


def _takes_inference_mode(model: nn.Module) -> bool:
    import inspect

    return "inference_mode" in inspect.signature(model.set_adapter).parameters


def _fit_head_shapes(model: nn.Module, weights: Mapping[str, torch.Tensor], adapter_name: str | None) -> None:
    """Resize a head copy to the saved adapter's label count (peft copies the base head for every
    new adapter, so an adapter with another label set would not load).

    Only the output dimension may differ; anything else means another backbone and is left for
    the loader to refuse.

    Args:
        model: the plain backbone (``adapter_name=None``: before the first adapter) or the PeftModel.
        weights: the adapter's saved state (peft key format ``base_model.model.<path>``).
        adapter_name: whose ``modules_to_save`` copy to resize.
    """
    params = dict(model.named_parameters())
    for key, saved in weights.items():
        if not key.startswith(_PEFT_PREFIX):
            continue
        module_path, _, leaf = key.rpartition(".")
        target = (key[len(_PEFT_PREFIX):] if adapter_name is None
                  else f"{module_path}.modules_to_save.{adapter_name}.{leaf}")
        p = params.get(target)
        if p is None or p.shape == saved.shape or p.shape[1:] != saved.shape[1:]:
            continue
        owner = model.get_submodule(target.rpartition(".")[0])
        setattr(owner, leaf, nn.Parameter(torch.zeros(saved.shape, dtype=p.dtype, device=p.device),
                                          requires_grad=False))
        if isinstance(owner, nn.Linear):
            owner.out_features = owner.weight.shape[0]


# --------------------------------------------------------------------------- storage
def _dir_mb(path: str, suffixes: tuple[str, ...] = (".safetensors", ".bin", ".json")) -> float:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if f.endswith(suffixes))
    return total / 2**20


def storage_report(runs: Mapping[str, str] | Sequence[str], full_model_mb: float | None = None) -> dict[str, Any]:
    """Disk needed to serve N locales: N fully fine-tuned models vs one backbone + N adapters.

    Args:
        runs: ``{locale: run dir}`` (or a list of run dirs) of adapter runs on one backbone.
        full_model_mb: size of one full model; default: the runs' recorded ``full_model_mb``
            (fp32 parameters of backbone + head), else the size of the backbone's weight files.

    Returns:
        ``n``, ``full_model_mb``, ``n_full_models_mb`` (N x full), ``adapters_mb`` (per run: the
        ``model/`` folder's weights + config), ``backbone_plus_adapters_mb`` and ``saving_factor``
        (N full / (backbone + N adapters)).
    """
    runs = dict(runs) if isinstance(runs, Mapping) else {os.path.basename(str(r)): r for r in runs}
    adapters, full = {}, full_model_mb
    for name, run_dir in runs.items():
        info = read_run(run_dir)
        adapters[name] = _dir_mb(info.model_dir)
        if full is None:
            recorded = (info.record.get("storage") or {}).get("full_model_mb")
            if info.kind == "peft" and recorded:
                # recorded over the peft-wrapped model: subtract the adapter's own parameters
                full = recorded - sum(t.numel() * t.element_size() for t in _read_peft_weights(info).values()) / 2**20
            elif info.kind == "full":
                full = _dir_mb(info.model_dir)
    if full is None:
        raise ValueError("give full_model_mb= (no run recorded the full model size)")
    n, total_adapters = len(adapters), sum(adapters.values())
    return {"n": n, "full_model_mb": full, "n_full_models_mb": n * full, "adapters_mb": adapters,
            "adapter_mb_mean": total_adapters / max(n, 1), "backbone_plus_adapters_mb": full + total_adapters,
            "saving_factor": n * full / (full + total_adapters) if n else float("nan")}
