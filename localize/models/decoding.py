"""Word tags from token-classification logits: per-word argmax, or constrained Viterbi under IOB2.

Strict IOB2 (what the scorer counts, ``localize.data.entities``) allows ``I-X`` only after ``B-X``
or ``I-X``; argmax can emit ``O I-X`` (no entity at all) where the model was half sure of one.
``viterbi_tags`` picks, per sentence, the tag sequence with the highest sum of word log-softmax
scores among the valid ones, so every predicted ``I-`` belongs to an entity.

A word that shares its token with the previous word (``word_index`` repeats) continues that word:
with argmax it gets the token's label with B-X turned into I-X. Viterbi keeps the rule as a
constraint: the shared word's tag must be ``b_to_i[previous tag]`` (O after O, I-X after B-X/I-X),
scored by the best of the token's labels that map to it (B-X or I-X). So a valid argmax output is
also the Viterbi output (it reaches every word's best score), and the B->I rule needs no second pass.

Truncated or padding words (``word_index`` -1, after the last word) get -100 from both decoders.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def iob2_transitions(label_names: Sequence[str]) -> torch.Tensor:
    """Allowed tag transitions under strict IOB2.

    Args:
        label_names: tag per label id (``O``, ``B-X``, ``I-X``).

    Returns:
        Bool ``[L + 1, L]``: row ``p < L`` says which tags may follow tag ``p``; row ``L`` which
        may start a sentence. ``I-X`` only after ``B-X``/``I-X``; everything else anywhere.
    """
    n = len(label_names)
    allowed = torch.ones(n + 1, n, dtype=torch.bool)
    for cur, tag in enumerate(label_names):
        if tag.startswith("I-"):
            allowed[:, cur] = torch.tensor([p in ("B-" + tag[2:], tag) for p in label_names] + [False])
    return allowed


def shared_words(word_index: torch.Tensor) -> torch.Tensor:
    """Bool ``[B, W]``: the word reads the same token as the word before it."""
    shared = torch.zeros_like(word_index, dtype=torch.bool)
    shared[:, 1:] = (word_index[:, 1:] == word_index[:, :-1]) & (word_index[:, 1:] >= 0)
    return shared


def word_scores(scores: torch.Tensor, word_index: torch.Tensor) -> torch.Tensor:
    """``[B, W, L]`` float: each word's row of the token scores ``[B, T, L]`` (the token it reads). Words
    with ``word_index`` -1 read token 0: mask them."""
    idx = word_index.clamp(min=0).unsqueeze(-1).expand(-1, -1, scores.shape[-1])
    return scores.float().gather(1, idx)


def argmax_tags(logits: torch.Tensor, word_index: torch.Tensor, b_to_i: torch.Tensor,
                transitions: torch.Tensor | None = None) -> torch.Tensor:
    """Per word the argmax label at its token (``transitions`` unused: same signature as Viterbi)."""
    picked = logits.argmax(-1).gather(1, word_index.clamp(min=0))
    picked = torch.where(shared_words(word_index), b_to_i[picked], picked)
    return picked.masked_fill(word_index < 0, -100)


def viterbi_tags(logits: torch.Tensor, word_index: torch.Tensor, b_to_i: torch.Tensor,
                 transitions: torch.Tensor, crf: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
    """Highest-scoring valid IOB2 tag sequence per sentence over word log-softmax scores.

    Args:
        logits: ``[B, T, L]`` token logits.
        word_index: ``[B, W]`` token position per word, -1 for truncated/padding words (trailing).
        b_to_i: ``[L]`` id of each label's I- form for B- labels (itself otherwise).
        transitions: ``iob2_transitions(label_names)``, ``[L + 1, L]`` bool.
        crf: a CRF's learned ``(transitions [L, L], start [L], end [L])`` scores, added to the allowed
            moves (``localize.models.crf``; a shared word's forced move gets none). Log-softmax
            shifts each word's scores by a constant, so the best path is the CRF's over raw logits.

    Returns:
        ``[B, W]`` tag ids, -100 for words with ``word_index`` -1.
    """
    n_labels = logits.shape[-1]
    mask = word_index >= 0
    scores = word_scores(logits, word_index).log_softmax(-1)  # [B, W, L]
    shared = shared_words(word_index)
    # A shared word's tag I-X is scored by its token's best of B-X/I-X (argmax's B->I rule).
    neg_inf = torch.finfo(scores.dtype).min
    merged = torch.full_like(scores, neg_inf).scatter_reduce(
        -1, b_to_i.to(scores.device).expand_as(scores), scores, reduce="amax", include_self=True)
    scores = torch.where(shared.unsqueeze(-1), merged, scores)
    zero = scores.new_zeros(())
    learned = [t.detach().float().to(scores.device) for t in crf] if crf is not None else [zero, zero, zero]
    step = torch.where(transitions[:n_labels].to(scores.device), learned[0], neg_inf)  # [prev, cur]
    start = torch.where(transitions[n_labels].to(scores.device), learned[1], neg_inf)  # [cur]
    labels = torch.arange(n_labels, device=scores.device)
    cont = torch.where(labels.unsqueeze(0) == b_to_i.to(scores.device).unsqueeze(1), zero, neg_inf)

    batch, n_words = word_index.shape
    delta = start + scores[:, 0]  # [B, L]
    back = torch.zeros(batch, n_words, n_labels, dtype=torch.long, device=scores.device)
    back[:, 0] = labels
    for w in range(1, n_words):
        trans = torch.where(shared[:, w, None, None], cont, step)  # [B, prev, cur]
        best, arg = (delta.unsqueeze(-1) + trans).max(1)  # over prev
        live = mask[:, w, None]
        # Clamp so -inf paths never go below finfo.min (and never overflow to -inf/nan).
        delta = torch.where(live, (best + scores[:, w]).clamp(min=neg_inf), delta)
        back[:, w] = torch.where(live, arg, labels)  # past the last word: carry the state
    tags = torch.empty(batch, n_words, dtype=torch.long, device=scores.device)
    cur = (delta + learned[2]).argmax(-1)
    for w in range(n_words - 1, -1, -1):
        tags[:, w] = cur
        cur = back[:, w].gather(1, cur.unsqueeze(1)).squeeze(1)
    return tags.masked_fill(~mask, -100)


# module.decoding -> decoder; every decoder takes (logits, word_index, b_to_i, transitions).
DECODERS = {"argmax": argmax_tags, "viterbi": viterbi_tags}


def word_decoder(decoding: str):
    """The ``DECODERS`` entry for ``module.decoding`` (a run's module and the adapter bank decode alike).

    Raises:
        ValueError: an unknown name, with the fix.
    """
    if decoding not in DECODERS:
        raise ValueError(f"module.decoding={decoding!r} is not one of {sorted(DECODERS)}. Fix: module.decoding=argmax")
    return DECODERS[decoding]
