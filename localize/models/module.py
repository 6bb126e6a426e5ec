"""The LightningModule family: one base owns backbone + adapter + optimiser + schedule + checkpoints.

Task modules (token classification, sequence classification, translation) add only their batch →
loss/metrics logic; no training loop is copied per method or per task.
"""
from __future__ import annotations

import logging
import random
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from torch import nn

from localize.adapters import apply_adapter
from localize.models.backbones import count_parameters

log = logging.getLogger(__name__)

# Parameters of these modules are the task head: they may get their own learning rate.
HEAD_KEYS = ("classifier", "score", "pooler", "modules_to_save")


class LocalizeLitModule(pl.LightningModule):
    """Base system: builds the backbone, applies the adapter, configures AdamW + warmup/decay.

    Args:
        backbone: partial of ``build_backbone`` completed here with the label set.
        optimizer: partial of a torch optimiser (``lr``, ``weight_decay`` set in config).
        scheduler: partial taking (optimizer, num_warmup_steps, num_training_steps), or None.
        adapter: a peft config instance, or None for full fine-tuning.
        label_names: ordered label set (None for generative tasks).
        freeze_embeddings: full FT only: freeze the word embeddings.
        modules_to_save: extra modules trained and saved with a peft adapter (e.g. ``pooler``).
        warmup_ratio: share of optimizer steps with linear warm-up.
        head_lr: learning rate for the task head (None: same as the body).
        base_model: the model's ``name_or_path``, recorded in checkpoints of adapter-only state.
        gradient_checkpointing: recompute each layer's activations in the backward pass instead of
            keeping them (less peak memory, ~30% more compute).
    """

    def __init__(
        self,
        backbone: Callable[..., nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        adapter: Any = None,
        label_names: list[str] | None = None,
        freeze_embeddings: bool = False,
        modules_to_save: list[str] | None = None,
        warmup_ratio: float = 0.1,
        head_lr: float | None = None,
        base_model: str | None = None,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        # Plain lists: checkpoints load with torch's weights_only=True, which refuses OmegaConf types.
        label_names = list(label_names) if label_names is not None else None
        modules_to_save = list(modules_to_save) if modules_to_save else None
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler", "adapter"])
        self.label_names = list(label_names) if label_names is not None else None
        self.id2label = dict(enumerate(self.label_names)) if self.label_names else None
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        _check_positive("adapter.lr", getattr(optimizer, "keywords", {}).get("lr"))
        _check_positive("adapter.head_lr", head_lr)
        kwargs = {"num_labels": len(self.label_names), "id2label": self.id2label} if self.label_names else {}
        model = backbone(**kwargs)
        self.model = apply_adapter(model, adapter, freeze_embeddings, modules_to_save)
        if gradient_checkpointing:
            # Non-reentrant: works when the inputs need no grad (PEFT, frozen embeddings).
            self.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        # from_pretrained returns eval mode and Lightning keeps submodule modes: enable dropout.
        self.model.train()
        self.param_counts = count_parameters(self.model)
        # Checkpoints of partly frozen models keep only the trainable state (+ the base reference),
        # so loading them must tolerate the frozen weights being absent.
        self.strict_loading = self.param_counts["trainable"] == self.param_counts["total"]
        log.info(
            "parameters: total %.1fM, trainable %.3fM (%.3f%%)",
            self.param_counts["total"] / 1e6,
            self.param_counts["trainable"] / 1e6,
            100 * self.param_counts["trainable_share"],
        )

    def forward(self, **batch: torch.Tensor):
        return self.model(**batch)

    def configure_optimizers(self):
        lr = self.optimizer_factory.keywords["lr"]
        wd = self.optimizer_factory.keywords.get("weight_decay", 0.0)
        params = param_groups(self.model, lr, self.hparams.head_lr, wd)
        optimizer = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(
            optimizer, num_warmup_steps=int(self.hparams.warmup_ratio * total), num_training_steps=total
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # RNG states make a resumed run continue exactly like an uninterrupted one (dropout masks).
        checkpoint["localize_rng"] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
        if self.strict_loading:
            return
        trainable = {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}
        checkpoint["localize_base_model"] = self.hparams.base_model

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("localize_rng")
        if rng is not None and self._trainer is not None and self._trainer.state.fn == "fit":
            torch.set_rng_state(rng["torch"])
            state = random.getstate()
            random.setstate((state[0], tuple(rng["python"]), state[2]))
        base = checkpoint.get("localize_base_model")
        if base is not None and self.hparams.base_model is not None and base != self.hparams.base_model:
            raise ValueError(
                f"checkpoint was trained on base model '{base}' but this run uses "
                f"'{self.hparams.base_model}': set model.name_or_path={base} (or model=...) to load it"
            )
        missing = [k for k in checkpoint["state_dict"] if k not in dict(self.named_parameters())]
        if missing and not any(k in dict(self.named_parameters()) for k in checkpoint["state_dict"]):
            raise ValueError(
                "checkpoint holds no parameter of this model (different adapter or task?): "
                f"e.g. {missing[:3]}; use the adapter=... and task=... the checkpoint was trained with"
            )

    def prepare_inference(self, tokenizer: Any, locale: dict[str, Any] | None = None, **options: Any) -> "LocalizeLitModule":
        """Attach what ``predict_texts`` needs besides the weights, and switch to eval mode.

        In training the datamodule owns the tokenizer and the locale's text handling; raw-text
        inference has no datamodule, so the loader (``localize.adapters.bank.load_run``) hands
        them over here, taken from the run's own config.

        Args:
            tokenizer: the run's fast tokenizer.
            locale: the locale config (normalisation, ``space_separated``, ``segmenter``).
            **options: data settings of the run (``max_length``, ``max_chars``, ``truncation``)
                and inference choices (``segmenter``, ``batch_size``).

        Returns:
            self, in eval mode.
        """
        if getattr(self, "tokenizer", None) is None:  # a module that owns one (translation) keeps it
            self.tokenizer = tokenizer
        self.inference_options = {"locale": dict(locale or {}), **options}
        return self.eval()

    def extra_results(self) -> dict[str, Any]:
        """Non-scalar results for the run record (e.g. a confusion matrix); tasks override."""
        return {}

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What must be stored to reproduce the localized model (adapter + head, or all weights)."""
        return {n: p.detach() for n, p in self.model.named_parameters() if p.requires_grad or self.strict_loading}


def param_groups(model: nn.Module, lr: float, head_lr: float | None = None,
                 weight_decay: float = 0.0) -> list[dict[str, Any]]:
    """AdamW parameter groups of the trainable parameters: the head may get its own learning rate;
    biases and LayerNorm get no weight decay (standard BERT recipe)."""
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        group_lr = (head_lr or lr) if any(k in name for k in HEAD_KEYS) else lr
        groups.setdefault((group_lr, p.ndim > 1), []).append(p)
    return [{"params": ps, "lr": glr, "weight_decay": weight_decay if decay else 0.0}
            for (glr, decay), ps in groups.items()]


def _check_positive(name: str, value: float | int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}: set {name}=<positive value>")
