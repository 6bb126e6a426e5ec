"""Token classification (NER): first-subtoken labels in, word-level strict span F1 out."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torchmetrics import MaxMetric

from localize.models.module import LocalizeLitModule
from localize.tracking.metrics import SpanF1

MODEL_INPUTS = ("input_ids", "attention_mask", "labels")


class TokenClassificationLitModule(LocalizeLitModule):
    """NER system. Batches carry ``word_index`` (token position read for each word, -1 if
    truncated) and ``word_labels`` (gold tag id per word) so scoring is per word, not per piece."""

    def __init__(self, *args, max_words: int = 512, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # B-X -> I-X by id: a word that shares its token with the previous word continues that
        # word's entity (one token cannot start two entities).
        self.register_buffer("b_to_i", b_to_i_ids(self.label_names), persistent=False)
        self.val_metric = SpanF1(self.id2label, max_words=max_words)
        self.test_metric = SpanF1(self.id2label, max_words=max_words)
        self.val_f1_best = MaxMetric()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # The loss comes out of the HF/peft forward: AdaLoRA adds its orthogonal regulariser there.
        loss = self(**{k: batch[k] for k in MODEL_INPUTS}).loss
        n_tokens = int(batch["attention_mask"].sum())
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        self.log("train/tokens", float(n_tokens), reduce_fx="sum", on_step=False, on_epoch=True)
        return loss

    def _eval_step(self, batch: dict[str, torch.Tensor], metric: SpanF1, stage: str) -> None:
        out = self(**{k: batch[k] for k in MODEL_INPUTS})
        self.log(f"{stage}/loss", out.loss, batch_size=batch["input_ids"].shape[0], sync_dist=True)
        pred = word_predictions(out.logits, batch["word_index"], self.b_to_i)
        metric.update(pred, batch["word_labels"], batch["index"])

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metric, "val")

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metric.compute()
        self.val_metric.reset()
        self.val_f1_best(scores["f1"])
        self.log_dict({f"val/{k}": v for k, v in scores.items()})
        self.log("val/f1_best", self.val_f1_best.compute(), prog_bar=True)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metric, "test")

    def on_test_epoch_end(self) -> None:
        scores = self.test_metric.compute()
        self.test_metric.reset()
        self.log_dict({f"test/{k}": v for k, v in scores.items()})

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return word_predictions(logits, batch["word_index"], self.b_to_i)

    def predict_texts(self, texts: Sequence[str], batch_size: int | None = None) -> list[dict[str, Any]]:
        """Tag raw texts (after ``prepare_inference``); see ``tag_texts`` for the output."""
        opts = self.inference_options
        return tag_texts(self.model, self.tokenizer, self.label_names, texts, locale=opts["locale"],
                         max_length=opts.get("max_length", 256), segmenter=opts.get("segmenter"),
                         batch_size=batch_size or opts.get("batch_size", 32))


def b_to_i_ids(label_names: Sequence[str]) -> torch.Tensor:
    """Per label id, the id of its I- form for B- labels (itself otherwise)."""
    ids = {t: i for i, t in enumerate(label_names)}
    return torch.tensor([ids.get("I-" + t[2:], i) if t.startswith("B-") else i for i, t in enumerate(label_names)])


@torch.inference_mode()
def tag_texts(model: nn.Module, tokenizer: Any, label_names: Sequence[str], texts: Sequence[str], *,
              locale: dict[str, Any] | None = None, max_length: int = 256, segmenter: str | None = None,
              batch_size: int = 32) -> list[dict[str, Any]]:
    """Tag raw texts with a token-classification model, reading one tag per word as in training.

    Text is cut into words with the locale's segmenter (``localize.data.segment``), each word is
    normalised as the training words were, and words are aligned to tokens with
    ``align_words`` — the training path, so inference sees the same unit as training.

    Args:
        model: HF or peft token-classification model (its active adapter is used).
        tokenizer: the fast tokenizer the model was trained with.
        label_names: id -> IOB2 tag, as trained.
        texts: raw texts, one per item.
        locale: locale config (``space_separated``, ``normalization``, ``segmenter``).
        max_length: truncation length in tokens; words past it are tagged ``O`` and counted.
        segmenter: override the locale's segmenter (``char``, ``fugashi``, ``whitespace``...).
        batch_size: texts per forward pass.

    Returns:
        Per text: ``text``; ``tokens`` (``text``, ``start``, ``end``, ``tag`` per word, offsets
        into the original text); ``entities`` (``text``, ``start``, ``end``, ``label``; strict
        IOB2: an ``I-X`` not continuing an X starts a new entity); ``segmenter`` (the unit used);
        ``truncated_words``.
    """
    from localize.data.alignment import align_words
    from localize.data.collate import PadCollator
    from localize.data.datamodule import normalize
    from localize.data.segment import segmenter_for

    locale = dict(locale or {})
    seg_name, segment = segmenter_for(locale, segmenter)
    space_separated = bool(locale.get("space_separated", True))
    form = locale.get("normalization")
    collate = PadCollator(tokenizer.pad_token_id)
    b_to_i = b_to_i_ids(label_names)
    device = next(model.parameters()).device
    out: list[dict[str, Any]] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start:start + batch_size])
        spans = [segment(t) for t in chunk]
        encoded = []
        for text, sp in zip(chunk, spans):
            words = [normalize(text[s:e], form) for s, e in sp] or [""]
            enc = align_words(words, None, tokenizer, {}, space_separated=space_separated, max_length=max_length)
            encoded.append({k: enc[k] for k in ("input_ids", "attention_mask", "word_index")})
        batch = collate(encoded)
        logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
        pred = word_predictions(logits.float().cpu(), batch["word_index"], b_to_i)
        for row, text, sp in zip(pred.tolist(), chunk, spans):
            tags = [label_names[k] if k >= 0 else "O" for k in row[:len(sp)]]
            tokens = [{"text": text[s:e], "start": s, "end": e, "tag": t} for (s, e), t in zip(sp, tags)]
            entities = [{"text": text[sp[i][0]:sp[j - 1][1]], "start": sp[i][0], "end": sp[j - 1][1], "label": lab}
                        for i, j, lab in entity_spans(tags)]
            out.append({"text": text, "tokens": tokens, "entities": entities, "segmenter": seg_name,
                        "truncated_words": sum(k < 0 for k in row[:len(sp)])})
    return out


def entity_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Strict IOB2 entities as ``(first word, end word exclusive, type)``."""
    out, begin, kind = [], None, None
    for i, tag in enumerate([*tags, "O"]):
        if begin is not None and (tag == "O" or tag.startswith("B-") or tag[2:] != kind):
            out.append((begin, i, kind))
            begin = None
        if tag != "O" and begin is None:
            begin, kind = i, tag[2:]
    return out


def word_predictions(logits: torch.Tensor, word_index: torch.Tensor, b_to_i: torch.Tensor) -> torch.Tensor:
    """Predicted label id per word, read at the word's token position (-100 for truncated words).

    A word that shares its token with the previous word gets the token's label turned from B-X to
    I-X (same rule as ``alignment.words_from_predictions``).
    """
    picked = logits.argmax(-1).gather(1, word_index.clamp(min=0))
    shared = torch.zeros_like(word_index, dtype=torch.bool)
    shared[:, 1:] = (word_index[:, 1:] == word_index[:, :-1]) & (word_index[:, 1:] >= 0)
    picked = torch.where(shared, b_to_i[picked], picked)
    return picked.masked_fill(word_index < 0, -100)
