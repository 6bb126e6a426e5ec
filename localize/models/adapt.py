"""Adapters: a peft config (from conf/adapter/*.yaml) applied to a backbone, or ``None`` for full FT.

peft's own registry picks the tuner from the config's type, so no method names appear here.
"""
from __future__ import annotations

import logging

from torch import nn

from localize.models.backbones import embedding_parameters, enable_prefix_cache_kwarg

log = logging.getLogger(__name__)


def apply_adapter(
    model: nn.Module,
    peft_config=None,
    freeze_embeddings: bool = False,
    modules_to_save: list[str] | None = None,
    task_type: str | None = None,
) -> nn.Module:
    """Wrap ``model`` with a peft adapter, or leave it fully trainable.

    Args:
        model: a Transformers model with its task head.
        peft_config: a ``peft.PeftConfig`` instance, or None for full fine-tuning.
        freeze_embeddings: full FT only: freeze the word-embedding matrix (96M of e5-small's 117M
            parameters) — much smaller optimizer state and checkpoints.
        modules_to_save: extra modules trained and saved with the adapter (e.g. a pooler that a
            converted model ships without, so it starts random and must learn).
        task_type: peft's task type (``TOKEN_CLS``, ``SEQ_CLS``, ``CAUSAL_LM``...), a fact of the task
            (``task.peft_task_type``) set here so that adapter configs never read the task.

    Returns:
        The (possibly peft-wrapped) model.

    Raises:
        ValueError: the backbone cannot take this adapter (with the fix).
    """
    if peft_config is None:
        for p in embedding_parameters(model) if freeze_embeddings else []:
            p.requires_grad_(False)
        return model
    import peft

    if task_type is not None:
        peft_config.task_type = task_type  # peft picks the model wrapper (and its head handling) from it
    if modules_to_save:
        # Only methods that take ``modules_to_save`` (LoRA family, prompt learning via task_type).
        existing = list(getattr(peft_config, "modules_to_save", None) or [])
        peft_config.modules_to_save = sorted(set(existing) | set(modules_to_save))
    if getattr(peft_config, "is_prompt_learning", False):
        model = enable_prefix_cache_kwarg(model)
        _check_takes_prefixes(model, peft_config)
    try:
        wrapped = peft.get_peft_model(model, peft_config)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"cannot apply {type(peft_config).__name__} to {type(model).__name__}: {e}. "
            f"Check adapter.peft.target_modules against the model's module names "
            f"(model.lora_target_modules), or pick another adapter."
        ) from e
    return wrapped


def _check_takes_prefixes(model: nn.Module, peft_config) -> None:
    """Prefix tuning feeds key/value prefixes as a cache: fail now, not deep inside a forward."""
    import inspect

    if type(peft_config).__name__ != "PrefixTuningConfig":
        return
    encoder = getattr(model, "base_model", model)
    params = inspect.signature(encoder.forward).parameters
    if "past_key_values" not in params and "cache" not in params:
        raise ValueError(
            f"adapter=prefix needs a backbone whose attention accepts past key values; "
            f"{type(encoder).__name__} does not. Use adapter=lora (or adalora/full) with this model"
        )
