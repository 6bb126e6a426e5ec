"""Token classification (NER): first-subtoken labels in, word-level strict span F1 out."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchmetrics import MaxMetric

from localize.models import crf as crf_lib
from localize.models.decoding import (argmax_tags, iob2_transitions, shared_words, viterbi_tags,
                                     word_decoder, word_scores)
from localize.models.module import LocalizeLitModule
from localize.tracking.intervals import TestPredictions
from localize.tracking.metrics import SpanF1

MODEL_INPUTS = ("input_ids", "attention_mask", "labels")


class TokenClassificationLitModule(LocalizeLitModule):
    """NER system. Batches carry ``word_index`` (token position read for each word, -1 if
    truncated) and ``word_labels`` (gold tag id per word) so scoring is per word, not per piece.

    ``decoding`` (``module.decoding``) turns logits into word tags for val/test scoring and
    ``predict``: ``argmax`` per word, or ``viterbi`` (the best valid IOB2 sequence,
    ``localize.models.decoding``).

    ``crf`` (``module.crf``): the classifier gets CRF transition scores (``localize.models.crf``), training
    minimises the CRF's negative log-likelihood of the gold word tags, and decoding is Viterbi with the
    learned scores (``decoding`` is not read).

    ``prior_bias`` (``module.prior_bias``): the classifier's bias starts at the log of ``label_prior`` (the
    train split's tag frequencies, from the datamodule), so the untrained head already predicts the label
    prior and the first steps do not have to move the encoder there (experiments/lora_collapse)."""

    def __init__(self, *args, max_words: int = 512, decoding: str = "argmax", crf: bool = False,
                 prior_bias: bool = False, label_prior: list[float] | None = None, **kwargs) -> None:
        # Both change the head before the adapter is applied, so peft trains and saves the changed head.
        backbone = kwargs["backbone"]
        prior = label_prior if prior_bias else None
        kwargs["backbone"] = lambda **kw: head_init(backbone(**kw), prior, crf)
        super().__init__(*args, **kwargs)
        self.decode = self.crf_decode if crf else word_decoder(decoding)
        self.crf = crf
        self.register_buffer("transitions", iob2_transitions(self.label_names), persistent=False)
        # B-X -> I-X by id: a word that shares its token with the previous word continues that
        # word's entity (one token cannot start two entities).
        self.register_buffer("b_to_i", b_to_i_ids(self.label_names), persistent=False)
        self.val_metric = SpanF1(self.id2label, max_words=max_words)
        self.test_metric = SpanF1(self.id2label, max_words=max_words)
        self.val_f1_best = MaxMetric()
        self.score_map: torch.Tensor | None = None

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # The loss comes out of the HF/peft forward: AdaLoRA adds its orthogonal regulariser there.
        out = self(**{k: batch[k] for k in MODEL_INPUTS})
        return self.crf_loss(out, batch) if self.crf else out.loss

    def crf_loss(self, out, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The CRF's NLL of the gold word tags, plus what the model's own loss holds beyond the token
        cross-entropy (AdaLoRA's orthogonal regulariser; zero for other methods)."""
        logits = out.logits
        extra = out.loss - nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), batch["labels"].view(-1))
        mask = crf_lib.training_mask(batch["word_index"], batch["word_labels"])
        scores = crf_lib.constrained(crf_lib.crf_head(self.model), self.transitions)
        nll = crf_lib.crf_nll(word_scores(logits, batch["word_index"]), batch["word_labels"], mask, *scores)
        return nll + extra

    def crf_decode(self, logits: torch.Tensor, word_index: torch.Tensor, b_to_i: torch.Tensor,
                   transitions: torch.Tensor | None = None) -> torch.Tensor:
        """Viterbi under IOB2 with the CRF's learned scores (a ``DECODERS`` signature)."""
        head = crf_lib.crf_head(self.model)
        return viterbi_tags(logits, word_index, b_to_i, self.transitions.to(logits.device),
                            crf=(head.transitions, head.start, head.end))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch)
        n_tokens = int(batch["attention_mask"].sum())
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        self.log("train/tokens", float(n_tokens), reduce_fx="sum", on_step=False, on_epoch=True)
        return loss

    def _eval_step(self, batch: dict[str, torch.Tensor], metric: SpanF1, stage: str) -> None:
        out = self(**{k: batch[k] for k in MODEL_INPUTS})
        loss = self.crf_loss(out, batch) if self.crf else out.loss
        self.log(f"{stage}/loss", loss, batch_size=batch["input_ids"].shape[0], sync_dist=True)
        pred = self.decode(out.logits, batch["word_index"], self.b_to_i, self.transitions)
        if self.score_map is not None:  # a type this data does not score reads as O (-100 stays)
            pred = torch.where(pred >= 0, self.score_map.to(pred.device)[pred.clamp(min=0)], pred)
        metric.update(pred, batch["word_labels"], batch["index"])
        if stage == "val":
            self._count_dev_labels(pred, batch["word_labels"])

    def _set_scored_types(self) -> None:
        """``score_map``: label id -> the id scored, ``O`` for types the datamodule does not score
        (``scored_types``: a class-incremental stage's test counts later types as ``O``)."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        types = getattr(dm, "scored_types", None)
        self.score_map = None if not types else score_map(self.label_names, types)

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._set_scored_types()

    def on_test_epoch_start(self) -> None:
        self._set_scored_types()

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
        self._test_predictions = TestPredictions("spans", self.test_metric.rows)
        self.test_metric.reset()
        self.log_dict({f"test/{k}": v for k, v in scores.items()})

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int = 0) -> list[dict[str, torch.Tensor]]:
        """Per text the tag id of each word (-100 past ``max_length``) and its probability
        (``predict_scored_words``); ``NerDataModule.decode_outputs`` reads them."""
        return predict_scored_words(self.model, batch, self.b_to_i, self.decode, self.transitions)

    def label_probabilities(self, batch: dict[str, torch.Tensor]) -> list[dict]:
        """Per sentence, the words the model reads (``words``: their positions; truncated ones are
        left out) with their given tag ids and the predicted tag distribution of each word's token
        (``word_probabilities``)."""
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        word_index = batch["word_index"].cpu()
        probs = word_probabilities(logits, word_index, self.b_to_i)
        # Unlabelled text (active learning): every word the model reads, no given tags.
        labelled = "word_labels" in batch
        word_labels = batch["word_labels"].cpu() if labelled else torch.zeros_like(word_index)
        rows = []
        for r, i in enumerate(batch["index"].tolist() if "index" in batch else range(len(word_index))):
            keep = (word_index[r] >= 0) & (word_labels[r] >= 0)
            rows.append({"index": i, "labels": word_labels[r][keep].numpy() if labelled else None,
                         "probs": probs[r][keep].numpy(), "words": keep.nonzero().flatten().tolist()})
        return rows


def head_init(model: nn.Module, prior: Sequence[float] | None, crf: bool) -> nn.Module:
    """The built backbone with its classifier's bias at ``log(prior)`` (when given) and the CRF head (when
    ``crf``). ``prior`` None: a rebuilt run, whose trained bias is loaded next."""
    if prior is not None:
        bias = getattr(getattr(model, "classifier", None), "bias", None)
        if bias is None:
            raise ValueError(f"module.prior_bias=true needs a classifier with a bias; {type(model).__name__} has none. "
                             f"Fix: module.prior_bias=false")
        with torch.no_grad():
            bias.copy_(torch.tensor(prior, dtype=bias.dtype).clamp(min=1e-6).log())
    return crf_lib.add_crf_head(model) if crf else model


def score_map(label_names: Sequence[str], types: Sequence[str]) -> torch.Tensor:
    """Per label id, itself if its type is in ``types`` (or it is ``O``), else the id of ``O``."""
    o = list(label_names).index("O")
    return torch.tensor([i if t == "O" or t[2:] in types else o for i, t in enumerate(label_names)])


def b_to_i_ids(label_names: Sequence[str]) -> torch.Tensor:
    """Per label id, the id of its I- form for B- labels (itself otherwise)."""
    ids = {t: i for i, t in enumerate(label_names)}
    return torch.tensor([ids.get("I-" + t[2:], i) if t.startswith("B-") else i for i, t in enumerate(label_names)])


def predict_word_tags(model: nn.Module, batch: dict[str, torch.Tensor], b_to_i: torch.Tensor,
                      decode=argmax_tags, transitions: torch.Tensor | None = None) -> torch.Tensor:
    """A batch's tag ids per word from any token-classification model (also an adapter bank's);
    ``decode``: a ``localize.models.decoding.DECODERS`` entry (Viterbi needs ``transitions``)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return decode(logits.float().cpu(), batch["word_index"].cpu(), b_to_i.cpu(),
                  None if transitions is None else transitions.cpu())


def word_probabilities(logits: torch.Tensor, word_index: torch.Tensor, b_to_i: torch.Tensor) -> torch.Tensor:
    """``[B, W, L]`` tag distribution of each word's token (float, on CPU). A word sharing its token
    with the previous word gets that token's B-X mass as I-X, as in decoding (one token cannot start
    two entities). Words with ``word_index`` -1 read token 0: mask them."""
    logits, word_index = logits.float().cpu(), word_index.cpu()
    probs = word_scores(logits, word_index).softmax(-1)
    shared = shared_words(word_index)
    if shared.any():
        folded = torch.zeros_like(probs).index_add_(2, b_to_i.cpu(), probs)
        probs = torch.where(shared.unsqueeze(-1), folded, probs)
    return probs


def predict_scored_words(model: nn.Module, batch: dict[str, torch.Tensor], b_to_i: torch.Tensor,
                         decode=argmax_tags, transitions: torch.Tensor | None = None) -> list[dict[str, torch.Tensor]]:
    """``predict_word_tags`` plus confidence, from one forward pass: per row ``tags`` (``[W]`` tag
    ids, -100 past ``max_length``) and ``scores`` (``[W]`` the ``word_probabilities`` mass of each
    word's predicted tag; NaN where the tag is -100). With Viterbi decoding the tag need not be the
    most probable one at its word; its score is still that word's probability of it."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float().cpu()
    word_index = batch["word_index"].cpu()
    tags = decode(logits, word_index, b_to_i.cpu(), None if transitions is None else transitions.cpu())
    probs = word_probabilities(logits, word_index, b_to_i)
    scores = probs.gather(2, tags.clamp(min=0).unsqueeze(-1)).squeeze(-1).masked_fill(tags < 0, float("nan"))
    return [{"tags": t, "scores": s} for t, s in zip(tags, scores)]
