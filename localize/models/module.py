"""The LightningModule family: one base owns backbone + adapter + optimiser + schedule + checkpoints.

Task modules (token classification, sequence classification, translation) add only their batch →
loss/metrics logic; no training loop is copied per method or per task.
"""
from __future__ import annotations

import copy
import logging
import random
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from torch import nn

from localize.models.adapt import apply_adapter
from localize.models.backbones import count_parameters
from localize.models.optim import clip_grad_norm_with_sparse, clip_without_scaler, lightning_kernel, with_sparse_rows
from localize.tracking.intervals import TestPredictions
from localize.tracking.status import count_labels

log = logging.getLogger(__name__)

# Parameters of these modules are the task head: they may get their own learning rate.
HEAD_KEYS = ("classifier", "score", "pooler", "modules_to_save")


class LocalizeLitModule(pl.LightningModule):
    """Base system: builds the backbone, applies the adapter, configures AdamW + warmup/decay.

    Args:
        backbone: partial of ``build_backbone`` completed here with the label set.
        optimizer: partial of a torch optimiser (``weight_decay`` set in config), completed here with
            the parameter groups and ``lr``.
        scheduler: partial taking (optimizer, num_warmup_steps, num_training_steps), or None.
        adapter: a peft config instance, or None for full fine-tuning.
        label_names: ordered label set (None for generative tasks).
        freeze_embeddings: full FT only: freeze the word embeddings.
        modules_to_save: extra modules trained and saved with a peft adapter (e.g. ``pooler``).
        peft_task_type: peft's task type of this task (``task.peft_task_type``), set on the adapter config.
        warmup_ratio: share of optimizer steps with linear warm-up.
        lr: learning rate of the body (``adapter.lr``); None only for a module built for inference,
            which ``configure_optimizers`` refuses.
        head_lr: learning rate for the task head (``adapter.head_lr``; None: same as the body).
        base_model: the model's ``name_or_path``, recorded in checkpoints of adapter-only state.
        gradient_checkpointing: recompute each layer's activations in the backward pass instead of
            keeping them (less peak memory, ~30% more compute).
        head_warmup_ratio: share of optimizer steps in which only the task head trains (linear probing
            first, then fine-tuning: LP-FT, Kumar et al. 2022), so a random head's gradients do not
            reach the backbone or adapter.
        frozen: no parameter trains (in-context prompting, ``adapter=icl``): the model is scored as it is
            and ``configure_optimizers`` returns no optimizer.
        compile: ``torch.compile`` the model when fitting starts (opt-in): true (inductor, dynamic shapes:
            length-grouped batches vary in length) or a dict of ``torch.compile`` keyword arguments.
        sparse_embeddings: full FT with trainable word embeddings: sparse embedding gradients, updated row by
            row by ``torch.optim.SparseAdam`` (opt-in; it changes the update: ``localize.models.optim``).
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
        peft_task_type: str | None = None,
        warmup_ratio: float = 0.1,
        lr: float | None = None,
        head_lr: float | None = None,
        base_model: str | None = None,
        gradient_checkpointing: bool = False,
        head_warmup_ratio: float = 0.0,
        frozen: bool = False,
        compile: bool | dict[str, Any] = False,
        sparse_embeddings: bool = False,
    ) -> None:
        super().__init__()
        # Plain lists: checkpoints load with torch's weights_only=True, which refuses OmegaConf types.
        label_names = list(label_names) if label_names is not None else None
        modules_to_save = list(modules_to_save) if modules_to_save else None
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler", "adapter"])
        self.label_names = list(label_names) if label_names is not None else None
        self.id2label = dict(enumerate(self.label_names)) if self.label_names else None
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        _check_positive("adapter.lr", lr)
        _check_positive("adapter.head_lr", head_lr)
        kwargs = {"num_labels": len(self.label_names), "id2label": self.id2label} if self.label_names else {}
        self._wrap(backbone(**kwargs), adapter)

    def _wrap(self, model: nn.Module, adapter: Any) -> None:
        """Apply the adapter (or full FT's freezing) to the plain backbone ``model`` and count parameters."""
        hp = self.hparams
        self.model = apply_adapter(model, adapter, hp.freeze_embeddings, hp.modules_to_save, hp.peft_task_type)
        if hp.gradient_checkpointing:
            # Non-reentrant: works when the inputs need no grad (PEFT, frozen embeddings).
            self.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        # from_pretrained returns eval mode and Lightning keeps submodule modes: enable dropout.
        self.model.train()
        if hp.frozen:
            self.model.requires_grad_(False)
        if hp.sparse_embeddings:
            emb = self.model.get_input_embeddings()
            if not emb.weight.requires_grad:
                raise ValueError("module.sparse_embeddings=true needs trainable word embeddings (adapter=full); this "
                                 "run's are frozen or under an adapter. Fix: module.sparse_embeddings=false")
            emb.sparse = True
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

    def rebase(self, prepare: Callable[[nn.Module], Any]) -> Any:
        """Take the adapter off, let ``prepare`` change the plain backbone's weights (``init_merged``: an
        earlier run's merged model becomes the base), and apply the same adapter again, so an adapter
        whose initialisation reads the base weights (OSF's SVD split, PiSSA) reads the new ones.
        Returns what ``prepare`` returned."""
        config = getattr(self.model, "peft_config", None)
        config = copy.deepcopy(config[self.model.active_adapter]) if config else None
        plain = self.model.unload() if config is not None else self.model
        out = prepare(plain)
        self._wrap(plain, config)
        return out

    def forward(self, **batch: torch.Tensor):
        return self.model(**batch)

    def on_fit_start(self) -> None:
        # In place (nn.Module.compile): the parameter names, hence checkpoints and saved models, stay the eager
        # model's. At fit start, not at build: a run loaded for evaluation or serving is not compiled.
        if self.hparams.compile:
            self.model.compile(**(dict(self.hparams.compile) if isinstance(self.hparams.compile, dict)
                                  else {"dynamic": True}))

    def configure_optimizers(self):
        if self.param_counts["trainable"] == 0:
            return None  # nothing trains (module.frozen): fit runs no step (the icl recipes: max_steps=0)
        lr = self.hparams.lr
        if lr is None:
            raise ValueError("no learning rate: this module was built without lr=... (set adapter.lr)")
        wd = self.optimizer_factory.keywords.get("weight_decay", 0.0)
        params = param_groups(self.model, lr, self.hparams.head_lr, wd)
        factory = lightning_kernel(self.optimizer_factory, self._trainer)  # _trainer: None when not attached
        if self.hparams.sparse_embeddings:
            optimizer = with_sparse_rows(factory, params, lr, self.model.get_input_embeddings().weight)
        else:
            optimizer = factory(params=params, lr=lr)
        ratio = self.hparams.head_warmup_ratio
        self._head_only_steps = int(ratio * self.trainer.estimated_stepping_batches) if ratio else 0
        if self._head_only_steps and not any(g["name"].startswith("head") for g in params):
            raise ValueError(f"module.head_warmup_ratio={ratio}: this model has no trainable task head to train "
                             "alone. Fix: module.head_warmup_ratio=0")
        if self.scheduler_factory is None:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(
            optimizer, num_warmup_steps=int(self.hparams.warmup_ratio * total), num_training_steps=total
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        if not (self.hparams.sparse_embeddings and gradient_clip_val):
            if gradient_clip_val and clip_without_scaler(self.trainer.precision_plugin, optimizer,
                                                         gradient_clip_val, gradient_clip_algorithm):
                return  # bf16-mixed: clipped as in fp32, so the fused AdamW kernel is allowed
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        if gradient_clip_algorithm not in (None, "norm"):
            raise ValueError(f"trainer.gradient_clip_algorithm={gradient_clip_algorithm} with module.sparse_embeddings"
                             "=true: only the norm is clipped over sparse gradients. Fix: trainer.gradient_clip_algorithm=norm")
        clip_grad_norm_with_sparse([p for g in optimizer.param_groups for p in g["params"]], float(gradient_clip_val))

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Head warm-up: the body's gradients are dropped (None, not zero), so AdamW leaves the body, its
        # moments and its weight decay untouched, and gradient clipping sees the head alone.
        if self.trainer.global_step < getattr(self, "_head_only_steps", 0):
            for group in optimizer.param_groups:
                if not group.get("name", "").startswith("head"):
                    for p in group["params"]:
                        p.grad = None

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

    def on_validation_epoch_start(self) -> None:
        self.dev_label_counts: dict[str, torch.Tensor] | None = None

    def _count_dev_labels(self, pred: torch.Tensor, gold: torch.Tensor) -> None:
        """Add a validation batch's predicted and gold label ids (-100: padding) to
        ``dev_label_counts``: ``RunHealthCallback`` marks a model that predicts one label for the
        whole dev set as degenerate (``localize.tracking.status``)."""
        if self.trainer.sanity_checking or not self.label_names:
            return
        counts = count_labels(pred, gold, len(self.label_names))
        old = getattr(self, "dev_label_counts", None)
        self.dev_label_counts = counts if old is None else {k: old[k] + v for k, v in counts.items()}

    def extra_results(self) -> dict[str, Any]:
        """Non-scalar results for the run record (e.g. a confusion matrix); tasks override."""
        return {}

    def training_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """The loss ``training_step`` minimises on ``batch`` (no logging): what callbacks that need an
        extra forward pass (FGM, EWC's Fisher) compute. Tasks override."""
        raise NotImplementedError

    def label_probabilities(self, batch: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        """Per row of a labelled batch: ``index`` (the example's position in its split), ``labels``
        (the given label ids; None for unlabelled text) and ``probs`` (the model's probabilities) — what
        a label audit (``localize.audit``, cleanlab) and active learning (``localize.select``) read.
        Labelled tasks override."""
        raise NotImplementedError(f"{type(self).__name__} has no label probabilities: a label audit needs a "
                                  f"labelled task (task=ner or task=classification)")

    def test_predictions(self) -> TestPredictions | None:
        """The last test pass's per-example outcomes (tasks set ``_test_predictions`` at the end of
        their test epoch); the run record's ``metrics_ci`` and ``test_predictions.jsonl`` come from them."""
        return getattr(self, "_test_predictions", None)

    def on_test_end(self) -> None:
        # W&B (any logger) gets each test metric's bootstrap interval as test/<name>_ci_low/_ci_high;
        # the run record keeps the full entries (metrics_ci). Not self.log: the bounds are no metric
        # of their own, so they stay out of trainer.test()'s results.
        predictions = self.test_predictions()
        if predictions is None:
            return
        logged = set(self.trainer.callback_metrics) if self._trainer is not None else set()
        bounds = {}
        for name, ci in predictions.intervals().items():
            if name in logged:
                bounds.update({f"{name}_ci_low": ci["low"], f"{name}_ci_high": ci["high"]})
        for logger in self.loggers:
            logger.log_metrics(bounds, step=self.global_step)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What must be stored to reproduce the localized model (adapter + head, or all weights)."""
        return {n: p.detach() for n, p in self.model.named_parameters() if p.requires_grad or self.strict_loading}


def param_groups(model: nn.Module, lr: float, head_lr: float | None = None,
                 weight_decay: float = 0.0) -> list[dict[str, Any]]:
    """AdamW parameter groups of the trainable parameters: the head may get its own learning rate;
    biases and LayerNorm get no weight decay (standard BERT recipe). Each group is named (``body``,
    ``body_no_decay``, ``head``, ``head_no_decay``): Lightning's LearningRateMonitor logs
    ``lr-AdamW/<name>`` instead of ``pg1..pg4``."""
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = "head" if any(k in name for k in HEAD_KEYS) else "body"
        groups.setdefault((part, p.ndim > 1), []).append(p)
    return [{"params": ps, "name": part + ("" if decay else "_no_decay"),
             "lr": (head_lr or lr) if part == "head" else lr, "weight_decay": weight_decay if decay else 0.0}
            for (part, decay), ps in groups.items()]


def _check_positive(name: str, value: float | int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}: set {name}=<positive value>")
