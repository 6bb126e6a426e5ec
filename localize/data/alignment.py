"""Word-to-token label alignment through character offsets.

Why not ``is_split_into_words=True``: a SentencePiece (XLM-R / e5) tokenizer then treats every
word as a space-preceded word, so a Japanese word becomes a bare ``▁`` piece plus its pieces and
the "first sub-token" label lands on the bare ``▁``, which carries none of the word's text
(measured F1 0.0). Here the sentence is tokenized as the text it was written as (words joined
with "" for ja/zh/th, " " otherwise) and each word's label goes on the first token that carries
at least one of the word's characters.

Offsets gotchas (transformers 5 / tokenizers 0.23, Metaspace tokenizers):

* a bare ``▁`` piece is NOT given an empty span: it reports the character after it (``(0, 1)``
  before "東京") or the space it replaced. A token therefore carries characters only if its
  span is non-empty AND its piece is more than word-boundary markers;
* ``▁is`` in "Tokyo is" spans ``(6, 8)`` with ``XLMRobertaTokenizer`` (WhitespaceSplit first) but
  ``(5, 8)``, space included, with a Metaspace-only pipeline such as the converted e5 tokenizer.
  Matching by overlap with the word's characters handles both.

Sharing: a token may carry the end of word i-1 and the start of word i. If it is also word i-1's
first token, word i reads its prediction there ("shared"; not labelled again). If not, it is
word i's own first token and carries word i's label.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from localize.data.entities import entity_spans
from localize.data.errors import DataError

IGNORE = -100
# Pieces made only of these are word-boundary markers (SentencePiece "▁", byte-level BPE "Ġ").
# A literal U+2581 in the text is indistinguishable from the marker; no real corpus has one.
_MARKERS = "▁Ġ"


def _word_spans(words: Sequence[str], sep: str) -> tuple[str, list[tuple[int, int]]]:
    """The sentence text and each word's ``[start, end)`` character span in it."""
    spans, pos = [], 0
    for w in words:
        spans.append((pos, pos + len(w)))
        pos += len(w) + len(sep)
    return sep.join(words), spans


def _align(words: Sequence[str], tokenizer: Any, space_separated: bool, max_length: int) -> dict:
    """Tokenize the joined text and map each word to a token position (-1: none)."""
    if not getattr(tokenizer, "is_fast", False):
        raise DataError(f"{type(tokenizer).__name__}: label alignment needs character offsets. "
                        "Fix: load a fast tokenizer (AutoTokenizer.from_pretrained(..., use_fast=True))")
    text, spans = _word_spans(words, " " if space_separated else "")
    enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True,
                    truncation=True, max_length=max_length)
    pieces = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    carry = [(k, s, e) for k, ((s, e), special, piece) in
             enumerate(zip(enc["offset_mapping"], enc["special_tokens_mask"], pieces))
             if e > s and not special and piece.strip(_MARKERS)]
    # Two pointers: words and character-carrying tokens both run left to right. The token
    # pointer is not advanced past a match, so a token straddling two words serves both.
    own, j = [], 0
    for ws, we in spans:
        while j < len(carry) and carry[j][2] <= ws:
            j += 1
        own.append(carry[j][0] if j < len(carry) and carry[j][1] < we and ws < we else -1)
    cut = len(enc["input_ids"]) >= max_length
    last_end = carry[-1][2] if carry else 0
    truncated = [p < 0 and cut and ws >= last_end for p, (ws, _) in zip(own, spans)]
    # A word with no token of its own (a U+3000 space word, which the normalizer turns into a
    # boundary) reads the previous word's token, so it continues that word's entity at eval
    # instead of reading "O" and splitting the entity in two.
    positions, last = [], -1
    for p, t in zip(own, truncated):
        positions.append(p if p >= 0 or t else last)
        last = positions[-1]
    return {"enc": enc, "pieces": pieces, "positions": positions, "truncated": truncated,
            "tokenless": [p < 0 and not t for p, t in zip(own, truncated)]}


def _shared(positions: Sequence[int]) -> list[bool]:
    """Per word: does it read the same token as the previous aligned word? (Aligned positions
    never decrease, so comparing with the last one seen is enough.)"""
    out, last = [], -1
    for p in positions:
        out.append(p >= 0 and p == last)
        last = p if p >= 0 else last
    return out


def align_words(words: Sequence[str], tags: Sequence[str] | None, tokenizer: Any,
                label2id: Mapping[str, int], *, space_separated: bool, max_length: int = 256) -> dict:
    """Tokenize one sentence and place one label per word on a token that carries its characters.

    Args:
        words: The sentence's words (e.g. MeCab tokens).
        tags: IOB2 tag per word, or None at inference (no ``labels`` key then).
        tokenizer: A fast HF tokenizer (offsets are required).
        label2id: Tag -> class id.
        space_separated: Join words with " " (en, de...) or "" (ja, zh, th) to rebuild the text.
        max_length: Truncation length in tokens, specials included.

    Returns:
        ``input_ids``, ``attention_mask``, ``labels`` (the word's label on its first
        character-carrying token, -100 elsewhere) and ``word_index`` (per word, the token position
        to read its prediction from; -1 when truncated away, or for a leading word without any
        token). A word whose first token also
        carries the previous word's characters, or that has no token at all (a U+3000 space),
        shares the previous word's position; the token keeps the previous word's label, so
        labelled tokens == words with a position of their own.

    Raises:
        DataError: a non-fast tokenizer, a tag missing from ``label2id`` or len(tags) != len(words).
    """
    a = _align(words, tokenizer, space_separated, max_length)
    out = {"input_ids": list(a["enc"]["input_ids"]), "attention_mask": list(a["enc"]["attention_mask"]),
           "word_index": a["positions"]}
    if tags is not None:
        out["labels"] = _labels(words, tags, a["positions"], len(out["input_ids"]), label2id)
    return out


def _labels(words: Sequence[str], tags: Sequence[str], positions: Sequence[int], n_tokens: int,
            label2id: Mapping[str, int]) -> list[int]:
    where = f"sentence {''.join(words)[:40]!r}"
    if len(tags) != len(words):
        raise DataError(f"{where}: {len(words)} words but {len(tags)} tags. Fix: give exactly one tag per word")
    if unknown := sorted(set(tags) - set(label2id)):
        raise DataError(f"{where}: unknown labels {unknown}. Fix: list every label of the data in "
                        f"data.labels=[O,B-X,I-X,...], or fix or drop the sentence")
    labels = [IGNORE] * n_tokens
    for pos, tag, shared in zip(positions, tags, _shared(positions)):
        if pos >= 0 and not shared:
            labels[pos] = label2id[tag]
    return labels


def words_from_predictions(pred_ids: Sequence[int], word_index: Sequence[int],
                           id2label: Mapping[int, str]) -> list[str]:
    """Read one tag per word back from token-level predictions.

    Args:
        pred_ids: Predicted class id per token position (list, numpy row or 1-D tensor).
        word_index: ``align_words(...)["word_index"]``.
        id2label: Class id -> tag; str keys (as in a saved HF config) work too.

    Returns:
        A tag per word: ``"O"`` for words with index -1; a word sharing its token with the
        previous word continues that word's entity (``B-X`` read there becomes ``I-X``), since
        one token cannot start two entities.
    """
    tags = []
    for pos, shared in zip(word_index, _shared(word_index)):
        if pos < 0:
            tags.append("O")
            continue
        k = int(pred_ids[pos])
        tag = id2label[k] if k in id2label else id2label[str(k)]
        tags.append("I-" + tag[2:] if shared and tag.startswith("B-") else tag)
    return tags


def alignment_stats(examples: Sequence[dict], tokenizer: Any, space_separated: bool,
                    max_length: int = 256) -> dict[str, float]:
    """Measure how words map onto a tokenizer's pieces for a corpus.

    Args:
        examples: Reader output (``tokens`` and ``tags``).
        tokenizer: Fast HF tokenizer.
        space_separated: As for ``align_words``.
        max_length: As for ``align_words``.

    Returns:
        ``words``; ``shared_word_share`` (words reading a token shared with the previous word);
        ``bare_marker_labelled_share`` (labelled tokens that are a bare ``▁``; 0 by construction);
        ``naive_bare_marker_share`` (same, for first sub-tokens of ``is_split_into_words=True``:
        the failure this module avoids); ``truncated_words``; ``tokenless_words`` (no
        character-carrying token of their own, e.g. a U+3000 space; they read the previous
        word's); ``roundtrip_errors`` (words whose gold tag is not recovered by
        ``words_from_predictions`` from gold token labels); ``span_f1_ceiling`` (strict IOB2 entity
        F1 of that read-back against gold, entities as the scorer counts them, truncated ones
        included: the best score a perfect token classifier can reach); ``tokens_per_word``.
    """
    n_words = shared = labelled = bare = naive_bare = naive_first = truncated = tokenless = errors = tokens = 0
    n_gold = n_back = n_hit = 0
    tags = sorted({t for ex in examples for t in ex["tags"]})
    label2id = {t: i for i, t in enumerate(tags)}
    id2label = dict(enumerate(tags))
    for ex in examples:
        words = ex["tokens"]
        a = _align(words, tokenizer, space_separated, max_length)
        pos, pieces, enc = a["positions"], a["pieces"], a["enc"]
        labels = _labels(words, ex["tags"], pos, len(enc["input_ids"]), label2id)
        n_words += len(words)
        tokens += len(enc["input_ids"]) - sum(enc["special_tokens_mask"])
        shared += sum(_shared(pos))
        truncated += sum(a["truncated"])
        tokenless += sum(a["tokenless"])
        hit = [k for k, lab in enumerate(labels) if lab != IGNORE]
        labelled += len(hit)
        bare += sum(not pieces[k].strip(_MARKERS) for k in hit)
        gold = [t if p >= 0 else "O" for t, p in zip(ex["tags"], pos)]
        back = words_from_predictions(labels, pos, id2label)
        errors += sum(g != p for g, p in zip(gold, back))
        gold_ents, back_ents = set(entity_spans(ex["tags"])), set(entity_spans(back))
        n_gold, n_back, n_hit = n_gold + len(gold_ents), n_back + len(back_ents), n_hit + len(gold_ents & back_ents)
        naive = tokenizer(list(words), is_split_into_words=True, truncation=True, max_length=max_length)
        wid = naive.word_ids()
        firsts = [naive["input_ids"][k] for k, w in enumerate(wid) if w is not None and (k == 0 or wid[k - 1] != w)]
        naive_first += len(firsts)
        naive_bare += sum(not p.strip(_MARKERS) for p in tokenizer.convert_ids_to_tokens(firsts))
    return {
        "words": n_words,
        "shared_word_share": shared / max(n_words, 1),
        "bare_marker_labelled_share": bare / max(labelled, 1),
        "naive_bare_marker_share": naive_bare / max(naive_first, 1),
        "truncated_words": truncated,
        "tokenless_words": tokenless,
        "roundtrip_errors": errors,
        "span_f1_ceiling": 2 * n_hit / max(n_gold + n_back, 1),
        "tokens_per_word": tokens / max(n_words, 1),
    }

