"""IOB2 entities, decoded exactly as the scorer counts them.

The reported F1 is seqeval's strict IOB2 score (``localize.tracking.metrics.span_scores``), so every
other reader of tag sequences (``predict`` output, the dictionary baseline, the alignment ceiling)
decodes through seqeval's own ``Entities(..., IOB2)`` here instead of a hand-written loop. Strict
IOB2 means an entity starts only at ``B-X`` and continues only over ``I-X`` of the same type: a
leading ``I-X``, or an ``I-Y`` after ``B-X``, is no entity (conlleval-style decoding would start one).
"""
from __future__ import annotations

from collections.abc import Sequence

from seqeval.scheme import IOB2, Entities


def batch_entity_spans(sequences: Sequence[Sequence[str]]) -> list[list[tuple[int, int, str]]]:
    """Strict IOB2 entities of each tag sequence.

    Args:
        sequences: IOB2 tag sequences, one per sentence (``O``, ``B-X``, ``I-X``).

    Returns:
        Per sentence, ``(first word, end word exclusive, type)`` for each entity, left to right.

    Raises:
        ValueError: a tag with a prefix IOB2 does not allow (``E-X``, ``S-X``); KeyError for a
            prefix letter no scheme knows. The scorer rejects both too.
    """
    found = Entities([list(tags) for tags in sequences], IOB2).entities
    return [[(e.start, e.end, e.tag) for e in sentence] for sentence in found]


def entity_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Strict IOB2 entities of one sentence as ``(first word, end word exclusive, type)``.

    ``entity_spans(["B-LOC", "I-LOC", "O", "I-ORG"]) == [(0, 2, "LOC")]``.
    """
    return batch_entity_spans([tags])[0]
