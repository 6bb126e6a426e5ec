"""A linear-chain CRF over word tags (``module.crf=true``): the token classifier's scores are the
emissions, learned transition scores join them, and training maximises the likelihood of the gold tag
sequence (Lample et al. 2016). Decoding is ``decoding.viterbi_tags`` with the learned scores added to
the strict-IOB2 constraints, so a CRF run never predicts an invalid ``I-X`` either.

The transitions live inside the classifier (``CRFHead``), so everything that stores, loads or ships a
run's head (peft's ``modules_to_save``, ``trainable.safetensors``, the adapter bank) carries them with
no code of its own.
"""
from __future__ import annotations

import torch
from torch import nn

from localize.models.decoding import shared_words


# export.json's word on a CRF run's export (``localize.export`` writes the emission classifier only).
CRF_EXPORT_NOTE = ("the CRF transition scores are not in this model: a pipeline decodes each token on its own; "
                   "python -m localize.predict run=<run dir> decodes with them")


class CRFHead(nn.Module):
    """The model's token classifier plus CRF scores. Its output is the classifier's, unchanged.

    Attributes:
        linear: the original classifier ``nn.Linear`` (emission scores per token and label); not named
            ``classifier``, which peft's ``modules_to_save`` would match a second time.
        transitions: ``[L, L]`` score of tag ``cur`` after tag ``prev`` (``[prev, cur]``).
        start, end: ``[L]`` score of a sentence starting / ending with each tag.
    """

    def __init__(self, classifier: nn.Module, num_labels: int) -> None:
        super().__init__()
        self.linear = classifier
        # Zeros: training starts from the plain emission scores (what argmax/Viterbi decoding read).
        self.transitions = nn.Parameter(torch.zeros(num_labels, num_labels))
        self.start = nn.Parameter(torch.zeros(num_labels))
        self.end = nn.Parameter(torch.zeros(num_labels))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden)


def add_crf_head(model: nn.Module) -> nn.Module:
    """Wrap ``model.classifier`` (every Transformers token-classification model names its head so)
    in a ``CRFHead``; the model is returned for use as a backbone factory's result."""
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, nn.Linear):
        raise ValueError(f"module.crf=true needs a token classifier named 'classifier' (nn.Linear); "
                         f"{type(model).__name__} has {type(classifier).__name__}. Fix: module.crf=false")
    model.classifier = CRFHead(classifier, classifier.out_features)
    return model


def crf_head(model: nn.Module) -> CRFHead:
    """The CRF head the model runs: peft's trained copy (``modules_to_save``) where there is one."""
    heads = [(name, m) for name, m in model.named_modules() if isinstance(m, CRFHead)]
    if not heads:
        raise ValueError("this model has no CRF head (it was built with module.crf=false)")
    trained = [m for name, m in heads if "modules_to_save" in name]
    return (trained or [m for _, m in heads])[-1]


def unwrap_crf(model: nn.Module) -> nn.Module:
    """Put each ``CRFHead``'s plain classifier back (for an exported Transformers model, whose pipeline
    decodes per token and cannot read the transitions)."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, CRFHead):
                setattr(module, child_name, child.linear)
    return model


def constrained(head: CRFHead, allowed: torch.Tensor, floor: float = -1e4) -> tuple[torch.Tensor, ...]:
    """``(transitions, start, end)`` with the transitions IOB2 forbids (``iob2_transitions``) at ``floor``:
    finite, so a gold path that breaks them still has a loss, but far below every allowed path."""
    n = head.start.shape[0]
    allowed = allowed.to(head.start.device)
    trans = torch.where(allowed[:n], head.transitions, torch.full_like(head.transitions, floor))
    start = torch.where(allowed[n], head.start, torch.full_like(head.start, floor))
    return trans, start, head.end


def crf_nll(emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, transitions: torch.Tensor,
            start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Mean over sentences of ``log Z - score(gold path)``.

    Args:
        emissions: ``[B, W, L]`` word scores.
        tags: ``[B, W]`` gold tag ids (any value where ``mask`` is false).
        mask: ``[B, W]`` words that count; a masked word is skipped (the path goes from the word before it
            to the word after), so trailing truncated words and unlabelled words drop out of both terms.
        transitions, start, end: the CRF scores (``constrained``).

    Sentences with no counted word add nothing.
    """
    batch, n_words, _ = emissions.shape
    tags = tags.clamp(min=0)
    rows = torch.arange(batch, device=emissions.device)
    seen = torch.zeros(batch, dtype=torch.bool, device=emissions.device)
    prev = torch.zeros(batch, dtype=torch.long, device=emissions.device)
    gold = emissions.new_zeros(batch)
    alpha = emissions.new_zeros(batch, emissions.shape[-1])
    for w in range(n_words):
        live, tag, emit = mask[:, w], tags[:, w], emissions[:, w]
        step = torch.where(seen, transitions[prev, tag], start[tag]) + emit[rows, tag]
        gold = gold + torch.where(live, step, torch.zeros_like(step))
        nxt = torch.where(seen.unsqueeze(-1), torch.logsumexp(alpha.unsqueeze(-1) + transitions, dim=1),
                          start.expand_as(alpha)) + emit
        alpha = torch.where(live.unsqueeze(-1), nxt, alpha)
        prev = torch.where(live, tag, prev)
        seen = seen | live
    gold = gold + end[prev]
    log_z = torch.logsumexp(alpha + end, dim=-1)
    return torch.where(seen, log_z - gold, torch.zeros_like(gold)).sum() / seen.sum().clamp(min=1)


def training_mask(word_index: torch.Tensor, word_labels: torch.Tensor) -> torch.Tensor:
    """Words the CRF loss reads: present (not truncated), labelled, and not sharing the previous word's
    token (a shared word's tag follows from its token's: decoding's B->I rule, not a CRF choice)."""
    return (word_index >= 0) & (word_labels >= 0) & ~shared_words(word_index)
