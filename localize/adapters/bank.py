"""Many adapters on one backbone: ``AdapterBank`` loads a backbone once and adds one peft adapter
per locale from run dirs; ``set_adapter`` switches locales without touching the backbone. Each
adapter keeps its own task head (peft ``modules_to_save`` holds one head copy per adapter), so
label sets may differ, and its own run's datamodule for raw text (``localize.data.inference``).

Reading a run dir is ``localize.runs``; storage reports are ``localize.tracking.storage``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from localize.data.inference import predict_texts as _predict_texts
from localize.models.backbones import TINY_RANDOM, build_backbone, enable_prefix_cache_kwarg, same_weights
from localize.models.seq_cls import predict_probabilities
from localize.models.decoding import iob2_transitions, word_decoder
from localize.models.token_cls import b_to_i_ids, predict_scored_words
from localize.models.weights import read_peft_weights
from localize.runs import FULL_WEIGHTS, RunInfo, base_identity, build_datamodule, read_run

log = logging.getLogger(__name__)

_PEFT_PREFIX = "base_model.model."


def _tagger(info: RunInfo) -> Callable[[nn.Module, dict[str, Any]], Any]:
    """The run's own word decoding (``module.decoding``), as its module's predict_step decodes."""
    module = info.cfg.module
    if module.get("crf"):  # its transition scores live in the run's module, not in a bank's shared model
        raise ValueError(f"{info.run_dir} has a CRF head (module.crf=true), which an adapter bank does not serve: "
                         f"predict with it on its own (python -m localize.predict run={info.run_dir})")
    b_to_i, decode = b_to_i_ids(info.labels), word_decoder(module.get("decoding", "argmax"))
    transitions = iob2_transitions(info.labels)
    return lambda model, batch: predict_scored_words(model, batch, b_to_i, decode, transitions)


# What one batch gives for each head the bank serves (the datamodule decodes it): the same
# outputs as the modules' predict_step, scores included.
_PREDICTORS: dict[str, Callable[[RunInfo], Callable[[nn.Module, dict[str, Any]], Any]]] = {
    "token_classification": _tagger,
    "sequence_classification": lambda info: predict_probabilities,
}


def full_fine_tunes(runs: Mapping[str, str]) -> dict[str, str]:
    """The ``{name: run dir}`` of ``runs`` that hold a full fine-tune (or only a checkpoint), not a
    peft adapter: such a run brings its own backbone, so it cannot join a bank."""
    infos = {name: read_run(run_dir) for name, run_dir in runs.items()}
    return {name: info.run_dir for name, info in infos.items() if info.kind != "peft"}


# --------------------------------------------------------------------------- many adapters
@dataclass
class _Adapter:
    info: RunInfo
    labels: list[str] | None
    datamodule: Any  # the run's own text → batch encoding (locale, tokenizer, max_length...)
    predict: Callable[[nn.Module, dict[str, Any]], Any]


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
        if head not in _PREDICTORS:
            raise ValueError(f"the adapter bank serves {list(_PREDICTORS)} adapters, not {head}: serve a "
                             f"translation run on its own (python -m localize.predict run=<run dir>)")
        self.base_name_or_path, self.head = str(base_name_or_path), head
        self.config_overrides = dict(config_overrides or {})
        self.seed, self.revision = seed, revision
        self.label_names = list(label_names) if label_names is not None else None
        self.adapters: dict[str, _Adapter] = {}
        self.model: nn.Module | None = None  # the PeftModel, once an adapter is added
        self.backbone_loads = 0
        self._base: nn.Module | None = None
        self.active: str | None = None
        if self.label_names is not None:
            self._load_backbone()

    @classmethod
    def from_runs(cls, runs: Mapping[str, str],
                  data_settings: Mapping[str, Mapping[str, Any]] | None = None) -> "AdapterBank":
        """A bank for ``{name: run dir}``; the backbone is the first run's base.

        Args:
            data_settings: per name, inference settings of that run's datamodule (see ``add``).
        """
        if not runs:
            raise ValueError("no adapters given: pass adapters.<locale>=<run dir> (at least one)")
        ident = base_identity(read_run(next(iter(runs.values()))).cfg)
        bank = cls(ident["name_or_path"], ident["head"], config_overrides=ident["config_overrides"],
                   seed=ident.get("seed"), revision=ident["revision"])
        for name, run_dir in runs.items():
            bank.add(name, run_dir, **dict((data_settings or {}).get(name) or {}))
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

    def add(self, name: str, run_dir: str, **data_settings: Any) -> None:
        """Load the adapter of ``run_dir`` under ``name`` (typically the locale code).

        Args:
            data_settings: inference settings of the run's datamodule (``segmenter``,
                ``eval_batch_size``, ``locale``); None values keep the run's own.

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
                if theirs.get(k) != v and not (k == "name_or_path" and same_weights(theirs[k], v))}
        if diff:
            raise ValueError(
                f"adapter {info.run_dir} was trained on a different base model than this bank's "
                f"'{self.base_name_or_path}' (run vs bank: {diff}): an adapter only works on the exact backbone "
                f"it was trained on — start another bank for that base, or retrain the adapter on "
                f"model.name_or_path={self.base_name_or_path}")
        predict = _PREDICTORS[self.head](info)  # before the weights load: a run the bank cannot serve is refused
        weights = read_peft_weights(info.model_dir)
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
        self.adapters[name] = _Adapter(info, info.labels, build_datamodule(info, **data_settings), predict)
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
        """Tag/classify ``texts`` with adapter ``name`` (default: the active one), encoded and
        decoded by that adapter's own run datamodule."""
        self.set_adapter(name or self.active)
        a = self.adapters[self.active]
        return _predict_texts(a.datamodule, lambda batch: a.predict(self.model, batch), texts, batch_size,
                              device=next(self.model.parameters()).device)

    def for_locale(self, name: str) -> "_BankView":
        """An object with ``predict_texts(texts)`` bound to one adapter (what ``localize.predict`` calls)."""
        if name not in self.adapters:
            self.set_adapter(name)  # raises the KeyError with the fix
        return _BankView(self, name)

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


