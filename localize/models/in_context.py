"""In-context classification with a causal LM (``adapter=icl``): no parameter changes; each label's
verbalizer is scored by its log-likelihood after the prompt (``localize.data.in_context`` builds the
prompts and the verbalizer ids).

The label scores are ``log_softmax`` over the labels of the summed token log-likelihoods. With
contextual calibration (batches with ``cf_input_ids``) the content-free prompt's label distribution is
divided out: ``log p(label | prompt) - log p(label | content-free prompt)`` (Zhao et al. 2021). Metrics,
test predictions, intervals and ``predict`` are the sequence classifier's.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

from localize.models.causal_lm import _can_slice_logits
from localize.models.seq_cls import SequenceClassificationLitModule


class InContextClassifierLitModule(SequenceClassificationLitModule):
    """A frozen causal LM that classifies by scoring label words.

    A run whose dev predictions are all one label is recorded degenerate with ``collapse_fix`` as the fix.

    Args:
        verbalizer_ids: per label (id order), the token ids of its word (``InContextClassificationDataModule``).
        model_heads: heads the model config declares (``model.heads``); must include ``causal_lm``.
        *args, **kwargs: see ``SequenceClassificationLitModule`` (``task.head`` is ``causal_lm``).
    """

    collapse_fix = ("the prompt does not tell the labels apart: show more demonstrations (adapter.k=8), "
                    "calibrate (adapter.calibrate=true) or choose other label words (data.verbalizers)")

    def __init__(self, *args: Any, verbalizer_ids: list[list[int]], model_heads: list[str] | None = None,
                 **kwargs: Any) -> None:
        if model_heads is not None and "causal_lm" not in model_heads:
            raise ValueError(f"adapter=icl scores label words with a causal LM, and model '{kwargs.get('base_model')}' "
                             f"has no causal_lm head (model.heads={list(model_heads)}). Fix: model=gemma3_270m")
        super().__init__(*args, **kwargs)
        self.verbalizer_ids = [[int(t) for t in v] for v in verbalizer_ids]
        if len(self.verbalizer_ids) != len(self.label_names):
            raise ValueError(f"{len(self.verbalizer_ids)} verbalizers for {len(self.label_names)} labels")
        if self.param_counts["trainable"]:
            raise ValueError("in-context classification trains nothing: set module.frozen=true (the icl recipe does)")
        self._slice = _can_slice_logits(self.model)
        self._calibration: dict[tuple[int, ...], torch.Tensor] = {}

    def _last_log_probs(self, sequences: list[torch.Tensor], keep: int) -> torch.Tensor:
        """Log-probabilities at the last ``keep`` positions of each sequence, ``(N, keep, vocab)``.

        Sequences are left-padded so they all end at the last position; position ids count real
        tokens only, so a padded prompt is scored exactly like the unpadded one."""
        width = max(len(s) for s in sequences)
        pad = int(self.model.config.pad_token_id or 0)
        ids = torch.full((len(sequences), width), pad, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(sequences):
            ids[i, width - len(s):], mask[i, width - len(s):] = s, 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        extra = {"logits_to_keep": keep} if self._slice else {}
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, **extra).logits
        return logits[:, -keep:].float().log_softmax(-1)

    def label_log_likelihoods(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(batch, labels)``: each verbalizer's summed token log-likelihood after each prompt."""
        prompts = [row[m.bool()] for row, m in zip(input_ids, attention_mask)]
        words = [torch.tensor(v, device=input_ids.device) for v in self.verbalizer_ids]
        if all(len(w) == 1 for w in words):  # one forward per prompt: every label's first token at once
            first = torch.stack([w[0] for w in words])
            return self._last_log_probs(prompts, 1)[:, -1, first]
        longest = max(len(w) for w in words)
        logp = self._last_log_probs([torch.cat([p, w]) for p in prompts for w in words], longest + 1)
        logp = logp.view(len(prompts), len(words), longest + 1, -1)
        scores = torch.zeros(len(prompts), len(words), device=logp.device)
        for j, w in enumerate(words):
            # Kept position longest - len(w) + t predicts the word's token t.
            at = torch.arange(len(w), device=logp.device) + longest - len(w)
            scores[:, j] = logp[:, j, at, w].sum(-1)
        return scores

    def label_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(batch, labels)`` log-probabilities over the labels (calibrated when the batch asks)."""
        scores = self.label_log_likelihoods(batch["input_ids"], batch["attention_mask"]).log_softmax(-1)
        if "cf_input_ids" not in batch:
            return scores
        pad = int(self.model.config.pad_token_id or 0)
        cf = []
        for row in batch["cf_input_ids"]:
            # The content-free prompt is shared by every input of a fixed draw: scored once.
            key = tuple(int(t) for t in row if t != pad)
            if key not in self._calibration:
                ids = torch.tensor([key], device=row.device)
                self._calibration[key] = self.label_log_likelihoods(ids, torch.ones_like(ids)).log_softmax(-1)[0]
            cf.append(self._calibration[key])
        return (scores - torch.stack(cf)).log_softmax(-1)

    def _loss(self, batch: dict[str, torch.Tensor]):
        scores = self.label_scores(batch)
        return SimpleNamespace(logits=scores), F.cross_entropy(scores, batch["labels"])

    def probabilities(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.label_scores(batch).exp().cpu()
