"""Adapters: a peft config (from conf/adapter/*.yaml) applied to a backbone, or ``None`` for full FT.

peft's own registry picks the tuner from the config's type, so no method names appear here. One
peft gap is filled for every prompt-learning method at once: per-token outputs of a token
classifier are aligned to the input tokens again (``AlignedPeftModelForTokenClassification``).
"""
from __future__ import annotations

import logging

import peft
from torch import nn
from transformers.modeling_outputs import TokenClassifierOutput

from localize.models.backbones import embedding_parameters, enable_prefix_cache_kwarg, resolve_path

log = logging.getLogger(__name__)


class AlignedPeftModelForTokenClassification(peft.PeftModelForTokenClassification):
    """peft's token-classification wrapper with one output position per input token.

    Prompt tuning and P-tuning put ``num_virtual_tokens`` embeddings in front of the input, so the
    backbone's logits have that many extra positions at the front: peft 0.21 passes the labels on
    unpadded (loss error: logits and labels differ in length) and every logit is shifted against
    ``word_index``. peft's causal-LM wrapper pads its labels with -100 for the virtual tokens; here
    the extra front positions are cut from the logits and the loss is computed on what is left.
    For prompt learning the backbone's loss is plain cross-entropy (what BERT-style token
    classifiers and peft's prefix-tuning path compute), so the loss is unchanged; prefix tuning
    adds no positions, so nothing is cut. ``hidden_states``/``attentions`` (if asked for) keep the
    virtual positions. Weight adapters (LoRA...) take peft's path untouched (AdaLoRA's
    regulariser comes from it).
    """

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, **kwargs):
        if not self.active_peft_config.is_prompt_learning:
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   inputs_embeds=inputs_embeds, labels=labels, **kwargs)
        return_dict = kwargs.pop("return_dict", None)
        out = super().forward(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                              return_dict=True, **kwargs)
        n_inputs = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        logits = out.logits[:, out.logits.shape[1] - n_inputs:]
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                               labels.reshape(-1).to(logits.device))
        out = TokenClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                    attentions=out.attentions)
        return out.to_tuple() if return_dict is False else out


# peft builds (get_peft_model) and loads (PeftModel.from_pretrained) through this task registry, so
# every path that makes a TOKEN_CLS PeftModel (training, localize.runs, the adapter bank) gets it;
# set on import, the one change this package makes to peft's state.
peft.MODEL_TYPE_TO_PEFT_MODEL_MAPPING["TOKEN_CLS"] = AlignedPeftModelForTokenClassification


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
    if task_type is not None:
        peft_config.task_type = task_type  # peft picks the model wrapper (and its head handling) from it
    if modules_to_save:
        # Only methods that take ``modules_to_save`` (LoRA family, prompt learning via task_type).
        existing = list(getattr(peft_config, "modules_to_save", None) or [])
        peft_config.modules_to_save = sorted(set(existing) | set(modules_to_save))
    if getattr(peft_config, "tokenizer_name_or_path", None):
        # Prompt tuning's TEXT init reads the tokenizer with AutoTokenizer: give it the embedded
        # model's local folder (minilm, e5_small), not a name it would look up on the hub.
        peft_config.tokenizer_name_or_path = resolve_path(str(peft_config.tokenizer_name_or_path))
    if getattr(peft_config, "is_prompt_learning", False):
        model = enable_prefix_cache_kwarg(model)
        _check_takes_prefixes(model, peft_config)
    try:
        wrapped = peft.get_peft_model(model, peft_config)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"cannot apply {type(peft_config).__name__} to {type(model).__name__}: {e}. "
            f"Check adapter.peft.target_modules against the model's module names "
            f"(model.lora_target_modules, model.ia3_target_modules), or pick another adapter."
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
