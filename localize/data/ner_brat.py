"""brat standoff for NER: ``x.ann`` beside ``x.txt``, or a folder of such pairs (``data.path=<folder>``).

Each line of the ``.txt`` is one sentence (brat shows one sentence per line); its ``T`` annotations
(``T1<TAB>LABEL start end<TAB>text``, character offsets into the whole file, end exclusive) become IOB2
tags through :func:`localize.data.ner_formats.spans_to_example`, like every other span format.
"""
from __future__ import annotations

import logging
from pathlib import Path

from localize.data.ner_formats import EMPTY_LABEL_FIX, OVERLAP_FIX, _same_text, check_format, spans_to_example
from localize.data.ner_readers import NER, _err, _existing, _read_utf8

log = logging.getLogger(__name__)


def _not_brat(path: Path, format: str | None) -> None:
    check_format(format)
    if format not in (None, "auto", "brat"):
        raise _err(path, None, f"data.format={format} but this is brat standoff (.ann + .txt)",
                   "set data.format=brat or null")


@NER.reader(".ann")
def read_brat(path: str | Path, char_level: bool = False, format: str | None = None) -> list[dict]:
    """Read one brat document: ``x.ann`` and the ``x.txt`` beside it; each line of the text is a sentence.

    Only text-bound annotations (``T`` lines) are entities; relations, events, attributes and notes
    are skipped. Offsets are characters of the whole ``.txt``, end exclusive, as brat writes them.

    Args:
        path: the ``.ann`` file.
        char_level: as :func:`read_annotations`.
        format: None, ``auto`` or ``brat``.

    Returns:
        One example per non-blank line of the ``.txt`` (``id`` ``"x.txt:<line>"``).

    Raises:
        DataError: naming the ``.ann`` line for an unreadable line, an empty label, a discontinuous,
            out-of-range, cross-line or overlapping entity, or an entity text that differs from the text.
    """
    ann = _existing(path)
    _not_brat(ann, format)
    txt = ann.with_suffix(".txt")
    if not txt.is_file():
        raise _err(ann, None, f"no {txt.name} beside it", "put the document's text next to its .ann file "
                   "(same name, suffix .txt)")
    text = _read_utf8(txt)
    spans: list[tuple[int, int, str, int, str]] = []  # start, end, label, .ann line, T id
    for n, row in enumerate(_read_utf8(ann).splitlines(), 1):
        if not row.startswith("T"):
            continue
        cols = row.split("\t")
        label, _, offsets = (cols[1] if len(cols) > 1 else "").partition(" ")
        if len(cols) < 2 or not offsets.strip():
            raise _err(ann, n, f"cannot read {row!r}",
                       "write text-bound annotations as T1<TAB>LABEL start end<TAB>text")
        if not label.strip():
            raise _err(ann, n, f"{cols[0]} has an empty label", EMPTY_LABEL_FIX)
        if ";" in offsets:
            raise _err(ann, n, f"{cols[0]} {label} is discontinuous ({offsets})",
                       "split it into separate entities or delete it: IOB2 tags cannot mark a gap")
        try:
            s, e = (int(x) for x in offsets.split())
        except ValueError:
            raise _err(ann, n, f"cannot read the offsets {offsets!r} of {cols[0]}",
                       "write them as 'start end'") from None
        if not 0 <= s < e <= len(text) or not text[s:e].strip():
            raise _err(ann, n, f"{cols[0]} {[s, e, label]} is empty, reversed or outside {txt.name} "
                       f"(length {len(text)})", "fix the offsets (0 <= start < end <= length of the .txt)")
        _same_text(ann, n, text, s, e, label, cols[2] if len(cols) > 2 else None)
        spans.append((s, e, label, n, cols[0]))
    spans.sort()
    for (s0, e0, l0, n0, t0), (s, e, lab, n, tid) in zip(spans, spans[1:]):
        if s < e0:
            raise _err(ann, n, f"{tid} {[s, e, lab]} ({text[s:e]!r}) overlaps {t0} {[s0, e0, l0]} "
                       f"({text[s0:e0]!r}, line {n0})", OVERLAP_FIX)
    examples, k, start = [], 0, 0
    for ln, sentence in enumerate(text.split("\n"), 1):
        end = start + len(sentence)
        inside = []
        while k < len(spans) and spans[k][0] <= end:
            s, e, lab, n, tid = spans[k]
            if e > end:
                raise _err(ann, n, f"{tid} {[s, e, lab]} crosses the line break after line {ln} of {txt.name}",
                           "each line of the .txt is one sentence: fix the span, or join the lines and re-annotate")
            inside.append([s - start, e - start, lab])
            k += 1
        if sentence.strip():
            examples.append(spans_to_example(txt, ln, sentence, inside, char_level, f"{txt.name}:{ln}"))
        start = end + 1
    return examples


@NER.folder_reader(".ann")
def read_brat_folder(folder: str | Path, char_level: bool = False, format: str | None = None) -> list[dict]:
    """Every ``*.ann`` document of a folder (with its ``.txt``), in name order, as one corpus."""
    folder = Path(folder)
    _not_brat(folder, format)
    anns = sorted(folder.glob("*.ann"))
    alone = [t.name for t in sorted(folder.glob("*.txt")) if not t.with_suffix(".ann").exists()]
    if alone:
        log.warning("%s: %d .txt files without an .ann skipped (not annotated?), first: %s", folder, len(alone),
                    alone[0])
    return [ex for ann in anns for ex in read_brat(ann, char_level)]
