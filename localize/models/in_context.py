"""In-context classification with a causal LM (``adapter=icl``): no parameter changes; each label's
verbalizer is scored by its log-likelihood after the prompt (``localize.data.in_context`` builds the
prompts and the verbalizer ids).

The label scores are ``log_softmax`` over the labels of the summed token log-likelihoods. When the
demonstrations are one shared draw, their tokens run once and their KV cache serves every prompt. With
contextual calibration (batches with ``cf_input_ids``) the content-free prompt's label distribution is
divided out: ``log p(label | prompt) - log p(label | content-free prompt)`` (Zhao et al. 2021). Metrics,
test predictions, intervals and ``predict`` are the sequence classifier's.
"""
from __future__ import annotations

import copy
import inspect
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

from localize.models.causal_lm import _can_slice_logits
from localize.models.seq_cls import SequenceClassificationLitModule

# A shared prefix shorter than this is run with each prompt (a cache copy would cost more than it saves).
MIN_CACHED = 16


class InContextClassifierLitModule(SequenceClassificationLitModule):
    """A frozen causal LM that classifies by scoring label words.

    A run whose dev predictions are all one label is recorded degenerate with ``collapse_fix`` as the fix.

    Args:
        verbalizer_ids: per label (id order), the token ids of its word (``InContextClassificationDataModule``).
        model_heads: heads the model config declares (``model.heads``); must include ``causal_lm``.
        *args, **kwargs: see ``SequenceClassificationLitModule`` (``task.head`` is ``causal_lm``).
    """

    collapse_fix = ("the prompt does not tell the labels apart: show more demonstrations (a larger adapter.k), "
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
        # transformers 5 renamed the KV-cache argument (and output field) past_key_values -> cache.
        self._cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self._calibration: dict[tuple[int, ...], torch.Tensor] = {}
        self._prefix: tuple[tuple[int, ...], Any] | None = None

    def _next_token_log_probs(self, sequences: list[torch.Tensor], reads: list[list[int]],
                              prefix: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, R, vocab)``: the next-token log-probabilities at positions ``reads[n]`` of each sequence.

        Sequences are right-padded (each keeps positions 0..len-1, so a padded sequence scores like the
        unpadded one, sliding-window layers included). Only the read positions reach the LM head
        (``logits_to_keep``). With ``prefix`` (the tokens every sequence starts with: the shared
        demonstrations), the prefix runs once and its KV cache is reused by every batch."""
        start = len(prefix) if prefix is not None else 0
        rest = [s[start:] for s in sequences]
        width = max(len(r) for r in rest)
        pad = int(self.model.config.pad_token_id or 0)
        ids = torch.full((len(rest), width), pad, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rest):
            ids[i, :len(r)], mask[i, :len(r)] = r, 1
        local = torch.tensor(reads, device=self.device) - start
        keep = torch.unique(local)  # sorted
        where = torch.searchsorted(keep, local)
        positions = torch.arange(start, start + width, device=self.device).expand(len(rest), -1)
        extra: dict[str, Any] = {"logits_to_keep": keep} if self._slice else {}
        if prefix is not None:
            cache = copy.deepcopy(self._prefix_cache(prefix))
            cache.batch_repeat_interleave(len(rest))
            mask = torch.cat([torch.ones(len(rest), start, dtype=mask.dtype, device=mask.device), mask], 1)
            extra.update({self._cache_arg: cache, "cache_position": positions[0]})
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=prefix is not None,
                            **extra).logits
        logits = logits if self._slice else logits[:, keep]
        return logits.float().log_softmax(-1)[torch.arange(len(rest), device=self.device)[:, None], where]

    def _prefix_cache(self, prefix: torch.Tensor):
        """The KV cache of ``prefix`` (the last one asked for is kept: one draw serves every batch)."""
        key = tuple(prefix.tolist())
        if self._prefix is None or self._prefix[0] != key:
            ids = prefix[None]
            out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
            self._prefix = (key, getattr(out, self._cache_arg))
        return self._prefix[1]

    @staticmethod
    def _shared_prefix(prompts: list[torch.Tensor], lengths: torch.Tensor | None) -> torch.Tensor | None:
        """The first ``prefix_length`` tokens, when every prompt of the batch starts with the same ones and
        goes on past them (the datamodule marks the demonstrations of a shared draw)."""
        if lengths is None or len(set(lengths.tolist())) != 1 or int(lengths[0]) < MIN_CACHED:
            return None
        n = int(lengths[0])
        head = prompts[0][:n]
        same = all(len(p) > n and torch.equal(p[:n], head) for p in prompts)
        return head if same else None

    def label_log_likelihoods(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                              prefix_length: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, labels)``: each verbalizer's summed token log-likelihood after each prompt."""
        prompts = [row[m.bool()] for row, m in zip(input_ids, attention_mask)]
        prefix = self._shared_prefix(prompts, prefix_length)
        words = [torch.tensor(v, device=input_ids.device) for v in self.verbalizer_ids]
        ends = [[len(p) - 1] for p in prompts]
        if all(len(w) == 1 for w in words):  # one forward: every label's (only) token at the prompt's end
            first = torch.stack([w[0] for w in words])
            return self._next_token_log_probs(prompts, ends, prefix)[:, 0, first]
        scores = torch.zeros(len(prompts), len(words), device=input_ids.device)
        for j, w in enumerate(words):  # one forward per label: prompt + word, the word's tokens read in turn
            reads = [[len(p) - 1 + t for t in range(len(w))] for p in prompts]
            logp = self._next_token_log_probs([torch.cat([p, w]) for p in prompts], reads, prefix)
            scores[:, j] = logp.gather(-1, w.expand(len(prompts), -1)[..., None]).squeeze(-1).sum(-1)
        return scores

    def label_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(batch, labels)`` log-probabilities over the labels (calibrated when the batch asks)."""
        scores = self.label_log_likelihoods(batch["input_ids"], batch["attention_mask"],
                                            batch.get("prefix_length")).log_softmax(-1)
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
