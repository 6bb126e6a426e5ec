"""Sequence classification (sentiment, topic, any labelled text): accuracy, macro-F1, per-class F1."""
from __future__ import annotations

import logging

import torch
from torch import nn
import torch.nn.functional as F
from torchmetrics import MaxMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from localize.models.module import LocalizeLitModule
from localize.tracking.intervals import TestPredictions
from localize.tracking.metrics import ExampleLabels

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
        self.test_labels = ExampleLabels(self.label_names)  # per-example outcomes, for intervals
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

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._loss(batch)[1]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def _eval_step(self, batch: dict[str, torch.Tensor], metrics: MetricCollection, stage: str) -> None:
        out, loss = self._loss(batch)
        self.log(f"{stage}/loss", loss, batch_size=batch["input_ids"].shape[0], sync_dist=True)
        metrics.update(out.logits.argmax(-1), batch["labels"])
        if stage == "test":
            self.test_labels.update(out.logits.argmax(-1), batch["labels"], batch["index"])
        if stage == "val":
            self._count_dev_labels(out.logits.argmax(-1), batch["labels"])

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
        self._test_predictions = TestPredictions("labels", self.test_labels.compute(),
                                                 {"classes": list(self.label_names)})
        self.test_labels.reset()
        for logger in self.loggers:  # W&B gets the matrix as a table; other loggers see the record
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "log") and hasattr(logger, "log_table"):
                rows = [[self.label_names[i], self.label_names[j], int(confusion[i, j])]
                        for i in range(len(self.label_names)) for j in range(len(self.label_names))]
                logger.log_table("test/confusion_matrix", columns=["actual", "predicted", "count"], data=rows)

    def extra_results(self) -> dict:
        return {"test_confusion_matrix": self.test_confusion, "labels": self.label_names}

    def probabilities(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(batch, labels)`` class probabilities (on the CPU)."""
        return predict_probabilities(self.model, batch)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int = 0) -> torch.Tensor:
        """Class probabilities per text; ``ClassificationDataModule.decode_outputs`` reads them."""
        return self.probabilities(batch)

    def label_probabilities(self, batch: dict[str, torch.Tensor]) -> list[dict]:
        probs = self.probabilities(batch)
        index = batch["index"].tolist() if "index" in batch else range(len(probs))
        given = batch["labels"].tolist() if "labels" in batch else [None] * len(probs)
        return [{"index": int(i), "labels": y, "probs": p.numpy()} for i, y, p in zip(index, given, probs)]


def predict_probabilities(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """A batch's softmax probabilities from any sequence-classification model (also a bank's)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return logits.float().softmax(-1).cpu()
