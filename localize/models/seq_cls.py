"""Sequence classification (sentiment, topic, any labelled text): accuracy, macro-F1, per-class F1."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F
from torchmetrics import MaxMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from localize.models.module import LocalizeLitModule

log = logging.getLogger(__name__)

MODEL_INPUTS = ("input_ids", "attention_mask", "labels")


class SequenceClassificationLitModule(LocalizeLitModule):
    """Text classification system sharing the family's optimiser, schedule and adapter plumbing.

    Args:
        class_weights: per-class loss weights (inverse frequency; from ``data.use_class_weights``).
        *args, **kwargs: see ``LocalizeLitModule``.
    """

    def __init__(self, *args, class_weights: list[float] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        n = len(self.label_names)
        weights = torch.tensor(class_weights, dtype=torch.float) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)

        def metrics() -> MetricCollection:
            return MetricCollection({
                "accuracy": MulticlassAccuracy(n, average="micro"),
                "f1_macro": MulticlassF1Score(n, average="macro"),
                "f1_per_class": MulticlassF1Score(n, average="none"),
                "confusion": MulticlassConfusionMatrix(n),
            })

        self.val_metrics, self.test_metrics = metrics(), metrics()
        self.val_f1_best = MaxMetric()
        self.test_confusion: list[list[int]] | None = None

    def _loss(self, batch: dict[str, torch.Tensor]):
        out = self(**{k: batch[k] for k in MODEL_INPUTS})
        if self.class_weights is None:
            return out, out.loss
        # Weighted CE computed here; adding (model loss - plain CE) keeps whatever the model's
        # forward adds on top of CE (AdaLoRA's orthogonal regulariser), and is 0 otherwise.
        plain = F.cross_entropy(out.logits, batch["labels"])
        weighted = F.cross_entropy(out.logits, batch["labels"], weight=self.class_weights)
        return out, weighted + (out.loss - plain)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        _, loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def _eval_step(self, batch: dict[str, torch.Tensor], metrics: MetricCollection, stage: str) -> None:
        out, loss = self._loss(batch)
        self.log(f"{stage}/loss", loss, batch_size=batch["input_ids"].shape[0], sync_dist=True)
        metrics.update(out.logits.argmax(-1), batch["labels"])

    def _epoch_end(self, metrics: MetricCollection, stage: str) -> dict[str, torch.Tensor]:
        values = metrics.compute()
        metrics.reset()
        per_class = values.pop("f1_per_class")
        confusion = values.pop("confusion")
        scalars = {f"{stage}/{k}": v for k, v in values.items()}
        scalars.update({f"{stage}/f1_{name}": per_class[i] for i, name in enumerate(self.label_names)})
        self.log_dict(scalars)
        return {"confusion": confusion}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        f1 = self.val_metrics["f1_macro"].compute()
        self._epoch_end(self.val_metrics, "val")
        self.val_f1_best(f1)
        self.log("val/f1_macro_best", self.val_f1_best.compute(), prog_bar=True)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        confusion = self._epoch_end(self.test_metrics, "test")["confusion"]
        self.test_confusion = confusion.tolist()
        for logger in self.loggers:  # W&B gets the matrix as a table; other loggers see the record
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "log") and hasattr(logger, "log_table"):
                rows = [[self.label_names[i], self.label_names[j], int(confusion[i, j])]
                        for i in range(len(self.label_names)) for j in range(len(self.label_names))]
                logger.log_table("test/confusion_matrix", columns=["actual", "predicted", "count"], data=rows)

    def extra_results(self) -> dict:
        return {"test_confusion_matrix": self.test_confusion, "labels": self.label_names}

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.softmax(-1)

    def predict_texts(self, texts: Sequence[str], batch_size: int | None = None) -> list[dict[str, Any]]:
        """Classify raw texts (after ``prepare_inference``); see ``classify_texts``."""
        opts = self.inference_options
        return classify_texts(self.model, self.tokenizer, self.label_names, texts, locale=opts["locale"],
                              max_length=opts.get("max_length", 256), max_chars=opts.get("max_chars"),
                              truncation=opts.get("truncation", "head"),
                              batch_size=batch_size or opts.get("batch_size", 32))


@torch.inference_mode()
def classify_texts(model: nn.Module, tokenizer: Any, label_names: Sequence[str], texts: Sequence[str], *,
                   locale: dict[str, Any] | None = None, max_length: int = 256, max_chars: int | None = None,
                   truncation: str = "head", batch_size: int = 32) -> list[dict[str, Any]]:
    """Classify raw texts, preparing them as the datamodule did in training.

    Args:
        model: HF or peft sequence-classification model (its active adapter is used).
        tokenizer: the run's tokenizer.
        label_names: id -> label, as trained.
        texts: raw texts.
        locale: locale config (``normalization``).
        max_length: token truncation length.
        max_chars: character pre-truncation budget (None: none).
        truncation: ``head`` or ``head_tail`` (as ``data.truncation``).
        batch_size: texts per forward pass.

    Returns:
        Per text: ``text``, ``label`` (argmax) and ``probabilities`` (label -> softmax probability).
    """
    from localize.data.cls_readers import truncate_text
    from localize.data.datamodule import normalize

    form = (locale or {}).get("normalization")
    device = next(model.parameters()).device
    out: list[dict[str, Any]] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start:start + batch_size])
        prepared = [normalize(t, form) for t in chunk]
        if max_chars:
            prepared = [truncate_text(t, max_chars, truncation) for t in prepared]
        enc = tokenizer(prepared, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        logits = model(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device)).logits
        probs = logits.float().softmax(-1).cpu()
        for text, p in zip(chunk, probs.tolist()):
            best = max(range(len(p)), key=p.__getitem__)
            out.append({"text": text, "label": label_names[best],
                        "probabilities": {name: prob for name, prob in zip(label_names, p)}})
    return out
