"""Annotation-tool exports for NER, read from their shape (``data.format=<name>`` forces one).

==============  =============================================================================
format          shape (character offsets, end exclusive)
==============  =============================================================================
predictions     ``localize.predict`` output, corrected by hand: ``{"text", "tokens": [{"start", "end", ...}],
                "entities": [{"start", "end", "label"}]}`` — the words are the predicted ``tokens``
                (cut further where a corrected entity starts or ends inside one)
conll           ``.conll/.iob/.txt/.tsv``: one token per line, tag in the last column
spans           ``{"text", "entities"|"spans"|"label": [[s, e, L] | {"start", "end", "label"}]}``
doccano         ``{"text", "label": [[s, e, L], ...]}`` (or ``entities: [{start_offset, end_offset, label}]``)
label_studio    ``[{"data": {"text"}, "annotations": [{"result": [{"value": {start, end, labels: [L]}}]}]}]``
prodigy         ``{"text", "spans": [{"start", "end", "label"}]}`` (spaCy/Prodigy; ``answer`` reject/ignore: dropped)
entities        ``{"text", "entities": [{"name", "span": [s, e], "type"}]}`` (e.g. Stockmark's ja Wikipedia NER)
brat            ``x.ann`` (``T1<TAB>LABEL s e<TAB>text``) beside ``x.txt``, or a folder of such pairs
                (read by ``localize.data.ner_brat``)
==============  =============================================================================

Every format becomes the same example (``id``, ``tokens``, IOB2 ``tags``) through the one span
conversion, :func:`spans_to_example`, so ``data.char_level`` (one token per
character, for scripts written without spaces) applies to all of them alike. Where an export writes the
entity's text as well (Label Studio, ``entities``, brat), it must match the text at the offsets: a
mismatch means offsets counted in bytes or UTF-16 units, or a text changed after annotation.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localize.data.errors import DataError
from localize.data.ner_readers import NER, _err, _existing, _json_records, _span

log = logging.getLogger(__name__)

# text, raw spans for spans_to_example, the example's id (None: "<file>:<line>"), and optionally the
# record's own word offsets (predictions).
Record = tuple
_SPAN_KEYS = ("entities", "spans", "label")


@dataclass(frozen=True)
class RecordFormat:
    """One JSON export shape.

    Args:
        name: the ``data.format`` value.
        shape: how a record looks, for messages.
        matches: True when a record can only be this format (it has at least one annotation to tell by).
        extract: ``(record, path, line) -> (text, spans, id)``, or None to skip a record that was not
            annotated (Label Studio task without annotations, a Prodigy ``reject``).
        generic: the generic span reader reads it too, so a file mixing such shapes is read as ``spans``.
    """

    name: str
    shape: str
    matches: Callable[[Mapping], bool]
    extract: Callable[[Mapping, Path, int], Record | None]
    generic: bool = False


# data.format values that are not JSON record shapes.
FILE_FORMATS = {"conll": ".conll/.iob/.txt/.tsv columns: token ... tag",
                "brat": "x.ann (T1<TAB>LABEL s e<TAB>text) beside x.txt, or a folder of such pairs"}


def formats_help() -> str:
    """Every ``data.format`` value with its shape, on one line."""
    shapes = {**{n: f.shape for n, f in RECORD_FORMATS.items()}, **FILE_FORMATS}
    return "; ".join(f"{n}: {s}" for n, s in shapes.items())


def check_format(name: str | None) -> None:
    """Raise a DataError when ``data.format`` names no format (None or ``auto``: detect the shape)."""
    if name not in (None, "auto") and name not in RECORD_FORMATS and name not in FILE_FORMATS:
        raise DataError(f"data.format={name} is not an NER format. Fix: set data.format to one of "
                        f"{sorted([*RECORD_FORMATS, *FILE_FORMATS])}, or null to tell from the file ({formats_help()})")


# ---- the span conversion ----------------------------------------------------------------------------
# Overlapping spans are refused rather than resolved: which one is right is the annotator's call.
OVERLAP_FIX = ("delete one of them in the file (usually keep the longer, outer entity): flat IOB2 tags give each "
               "token one entity, so nested or overlapping entities cannot be represented")
EMPTY_LABEL_FIX = "write the entity type in the file, or delete the span"


def _empty_label(raw: Any) -> bool:
    """A span whose label is missing, blank or an empty list (``_span`` would call it unreadable)."""
    if isinstance(raw, Mapping):
        label = raw.get("label", raw.get("labels"))
    elif isinstance(raw, Sequence) and not isinstance(raw, str) and len(raw) == 3:
        label = raw[2]
    else:
        return False
    return label is None or label == [] or (isinstance(label, str) and not label.strip())


def spans_to_example(path: str | Path, line: int | None, text: str, raw: Sequence[Any],
                     char_level: bool = False, rec_id: Any = None,
                     words: Sequence[tuple[int, int]] | None = None) -> dict:
    """One text and its character spans as a word- (or character-) level IOB2 example.

    The one span -> IOB2 conversion: span JSON (``read_span_json``), every record format here and brat
    (``localize.data.ner_brat``) go through it.

    Args:
        path: file named in errors. line: its line (None: the whole file).
        text: the record's non-empty text.
        raw: ``[start, end, label]`` triples or span dicts (see ``_span``), end exclusive.
        char_level: every non-space character is a token; False: whitespace-separated words,
            each tagged with the first entity it overlaps.
        rec_id: the example's ``id`` (default ``"<file>:<line>"``).
        words: the record's own word offsets (``char_level`` is then not used); a word an entity
            starts or ends inside is cut there.

    Raises:
        DataError: an unreadable span, offsets empty/reversed/outside the text, or overlapping spans.
    """
    path = Path(path)
    spans = []
    for r in raw:
        if _empty_label(r):
            raise _err(path, line, f"span {r!r} has an empty label", EMPTY_LABEL_FIX)
        try:
            spans.append(_span(r))
        except TypeError:
            raise _err(path, line, f"cannot read span {r!r} (offsets must be integers, not booleans or "
                       f"strings; the label a non-empty string)",
                       'write spans as {"start": s, "end": e, "label": L} or [s, e, L] with integer offsets') from None
    spans.sort()
    for i, (s, e, lab) in enumerate(spans):
        if not 0 <= s < e <= len(text) or not text[s:e].strip():
            raise _err(path, line, f"span {[s, e, lab]} is empty, reversed or outside the text "
                       f"(length {len(text)})", "fix the offsets (0 <= start < end <= len(text), end exclusive)")
        if i and s < spans[i - 1][1]:
            raise _err(path, line, f"span {[s, e, lab]} overlaps span {list(spans[i - 1])} ({text[s:e]!r} / "
                       f"{text[spans[i - 1][0]:spans[i - 1][1]]!r})", OVERLAP_FIX)
    # owner[c] = index of the span covering character c, -1 outside entities.
    owner = [-1] * len(text)
    for k, (s, e, _) in enumerate(spans):
        owner[s:e] = [k] * (e - s)
    if words is not None:
        units = _cut(words, {c for s, e, _ in spans for c in (s, e)}, text)
    else:
        units = ([(m.start(), m.end()) for m in re.finditer(r"\S", text)] if char_level
                 else [(m.start(), m.end()) for m in re.finditer(r"\S+", text)])
    tokens, tags, prev = [], [], -1
    for s, e in units:
        k = next((owner[c] for c in range(s, e) if owner[c] >= 0), -1)
        tokens.append(text[s:e])
        tags.append("O" if k < 0 else ("I-" if k == prev else "B-") + spans[k][2])
        prev = k
    return {"id": str(rec_id if rec_id is not None else f"{path.name}:{line}"), "tokens": tokens, "tags": tags}


def _cut(words: Sequence[tuple[int, int]], cuts: set[int], text: str) -> list[tuple[int, int]]:
    """Word offsets cut at every entity boundary that falls inside a word (blank pieces dropped)."""
    out = []
    for s, e in words:
        points = [s, *sorted(c for c in cuts if s < c < e), e]
        out += [(a, b) for a, b in zip(points, points[1:]) if text[a:b].strip()]
    return out


# ---- helpers shared by the extractors ---------------------------------------------------------------
def _text(value: Any, path: Path, line: int, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _err(path, line, f"record has no or empty {key!r}", "drop the record or fill in its text")
    return value


def _first_item(rec: Mapping, key: str) -> Any:
    items = rec.get(key)
    return items[0] if isinstance(items, list) and items else None


def _unannotated_text(rec: Any) -> bool:
    """A text record with no spans yet: any text format reads it (all ``O``)."""
    return isinstance(rec, Mapping) and "text" in rec and not any(
        isinstance(rec.get(k), list) and rec[k] for k in _SPAN_KEYS)


def _same_text(path: Path, line: int, text: str, s: Any, e: Any, label: Any, written: Any) -> None:
    """The export's copy of the entity text must be the text at its offsets."""
    if not (isinstance(written, str) and isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(text)):
        return  # nothing to compare, or offsets that spans_to_example reports
    if text[s:e].strip() != written.strip():
        raise _err(path, line, f"span {[s, e, label]} covers {text[s:e]!r} but the export names {written!r}",
                   "fix the offsets: they count characters of the text (not bytes or UTF-16 units), end exclusive; "
                   "or re-export if the text changed after annotation")


# ---- JSON record formats ----------------------------------------------------------------------------
_PRED_FIX = ('keep each token as localize.predict wrote it ({"text", "start", "end", "tag"}), or delete "tokens" '
             'to read the record as plain spans')


def _predictions(rec: Mapping, path: Path, line: int) -> Record:
    text = _text(rec.get("text"), path, line, "text")
    words = []
    for tok in rec.get("tokens") or []:
        s, e = (tok.get("start"), tok.get("end")) if isinstance(tok, Mapping) else (None, None)
        if not (isinstance(s, int) and isinstance(e, int) and not isinstance(s, bool) and 0 <= s < e <= len(text)):
            raise _err(path, line, f"token {tok!r} has no valid start/end in the text (length {len(text)})", _PRED_FIX)
        words.append((s, e))
    spans = []
    for ent in rec.get("entities") or []:
        if not isinstance(ent, Mapping) or not {"start", "end", "label"} <= set(ent):
            raise _err(path, line, f"cannot read entity {ent!r}", 'write each entity as {"start": s, "end": e, '
                       '"label": L} (its "text" is checked against the offsets when given)')
        _same_text(path, line, text, ent["start"], ent["end"], ent["label"], ent.get("text"))
        spans.append({"start": ent["start"], "end": ent["end"], "label": ent["label"]})
    return text, spans, rec.get("id"), words


def _is_predictions(rec: Mapping) -> bool:
    first = _first_item(rec, "tokens")
    return "text" in rec and isinstance(first, Mapping) and "start" in first and "entities" in rec


def _spans(rec: Mapping, path: Path, line: int) -> Record:
    raw = next((rec[k] for k in _SPAN_KEYS if k in rec), [])
    return _text(rec.get("text"), path, line, "text"), list(raw or []), rec.get("id")


def _is_spans(rec: Mapping) -> bool:
    return "text" in rec and any(isinstance(_first_item(rec, k), (Mapping, list)) for k in _SPAN_KEYS)


def _doccano(rec: Mapping, path: Path, line: int) -> Record:
    # doccano >= 1.6 writes entities: [{id, label, start_offset, end_offset}] (+ relations); _span reads both.
    raw = rec["label"] if "label" in rec else rec.get("entities", [])
    return _text(rec.get("text"), path, line, "text"), list(raw or []), rec.get("id")


def _is_doccano(rec: Mapping) -> bool:
    first_label, first_entity = _first_item(rec, "label"), _first_item(rec, "entities")
    return "text" in rec and (isinstance(first_label, list)
                              or isinstance(first_entity, Mapping) and "start_offset" in first_entity)


def _label_studio(rec: Mapping, path: Path, line: int) -> Record | None:
    data = rec.get("data") if isinstance(rec.get("data"), Mapping) else {}
    # The text field is named in the labelling config (value="$text"); take the only string when not "text".
    strings = [v for v in data.values() if isinstance(v, str)]
    text = _text(data.get("text", strings[0] if len(strings) == 1 else None), path, line, "data.text")
    done = [a for a in rec.get("annotations", rec.get("completions")) or []
            if isinstance(a, Mapping) and not a.get("was_cancelled")]
    if not done:
        return None  # a task nobody annotated is not a sentence without entities
    spans = []
    # Several annotators: the first annotation is used (the count is logged by read_annotations).
    for r in done[0].get("result") or []:
        value = r.get("value") if isinstance(r, Mapping) else None
        if not isinstance(value, Mapping) or ("start" not in value and "end" not in value):
            continue  # relations, choices, text areas: not spans
        labels = value.get("labels")
        if isinstance(labels, list) and len(labels) > 1:
            raise _err(path, line, f"region {[value.get('start'), value.get('end')]} ({value.get('text')!r}) has "
                       f"several labels {labels}", "keep one label per region in Label Studio and export again")
        s, e = value.get("start"), value.get("end")
        _same_text(path, line, text, s, e, labels[0] if isinstance(labels, list) and labels else labels,
                   value.get("text"))
        spans.append({"start": s, "end": e, "labels": labels})
    return text, spans, rec.get("id")


def _is_label_studio(rec: Mapping) -> bool:
    return isinstance(rec.get("data"), Mapping) and any(k in rec for k in ("annotations", "completions"))


def _prodigy(rec: Mapping, path: Path, line: int) -> Record | None:
    if rec.get("answer") in ("reject", "ignore"):
        return None  # the annotator rejected the suggested spans or skipped the text
    return _text(rec.get("text"), path, line, "text"), list(rec.get("spans") or []), rec.get("id")


def _is_prodigy(rec: Mapping) -> bool:
    return "text" in rec and isinstance(_first_item(rec, "spans"), Mapping)


def _entities(rec: Mapping, path: Path, line: int) -> Record:
    text = _text(rec.get("text"), path, line, "text")
    spans = []
    for ent in rec.get("entities") or []:
        span = ent.get("span") if isinstance(ent, Mapping) else None
        if not (isinstance(span, list) and len(span) == 2):
            raise _err(path, line, f"cannot read entity {ent!r}",
                       'write each entity as {"name": text, "span": [start, end], "type": label}')
        _same_text(path, line, text, span[0], span[1], ent.get("type"), ent.get("name"))
        spans.append([span[0], span[1], ent.get("type")])
    return text, spans, rec.get("id")


def _is_entities(rec: Mapping) -> bool:
    first = _first_item(rec, "entities")
    return "text" in rec and isinstance(first, Mapping) and "span" in first


# In detection order, most specific first: an entities or doccano record also looks like generic spans.
RECORD_FORMATS: dict[str, RecordFormat] = {f.name: f for f in (
    RecordFormat("predictions", '{"text", "tokens": [{"start", "end"}], "entities": [{"start", "end", "label"}]} '
                 '(localize.predict output)', _is_predictions, _predictions),
    RecordFormat("label_studio", '[{"data": {"text"}, "annotations": [{"result": [{"value": {start, end, '
                 'labels: [L]}}]}]}]', _is_label_studio, _label_studio),
    RecordFormat("entities", '{"text", "entities": [{"name", "span": [s, e], "type"}]}', _is_entities, _entities),
    RecordFormat("doccano", '{"text", "label": [[s, e, L], ...]}', _is_doccano, _doccano, generic=True),
    RecordFormat("prodigy", '{"text", "spans": [{"start", "end", "label"}]} (spaCy/Prodigy)', _is_prodigy, _prodigy,
                 generic=True),
    RecordFormat("spans", '{"text", "entities"|"spans"|"label": [[s, e, L] | {"start", "end", "label"}]}', _is_spans,
                 _spans, generic=True),
)}


def _shape(rec: Any) -> str | None:
    """The record format this record can only be; None when it has no annotation to tell by."""
    if not isinstance(rec, Mapping):
        return None
    return next((n for n, f in RECORD_FORMATS.items() if f.matches(rec)), None)


def _detect(path: Path, records: Sequence[tuple[int, Any]]) -> str:
    """The format of a file's records: the shapes they show must agree (generic ones read as ``spans``)."""
    seen: dict[str, int] = {}
    for line, rec in records:
        shape = _shape(rec)
        if shape is None and not _unannotated_text(rec):
            raise _err(path, line, f"record has none of the known shapes "
                       f"({'keys ' + str(sorted(rec)[:8]) if isinstance(rec, Mapping) else type(rec).__name__})",
                       f"export it in one of these, or set data.format=<name> to read it as one: {formats_help()}")
        if shape is not None:
            seen.setdefault(shape, line)
    if len(seen) > 1 and all(RECORD_FORMATS[n].generic for n in seen):
        return "spans"
    if len(seen) > 1:
        (a, la), (b, lb) = list(seen.items())[:2]
        raise _err(path, lb, f"record is {b} but line {la} is {a}",
                   "keep one export format per file (split the file), or set data.format=<name>")
    return next(iter(seen), "spans")


@NER.reader(".json", ".jsonl")
def read_annotations(path: str | Path, char_level: bool = False, format: str | None = None) -> list[dict]:
    """Read a JSON(L) export of spans: doccano, Label Studio, spaCy/Prodigy, ``entities`` records or
    generic span JSON (see the module table), told apart by the records' shape.

    Args:
        path: ``.jsonl`` (one record per line) or ``.json`` (a list of records).
        char_level: every non-space character is a token (scripts written without spaces); False:
            whitespace-separated words, each tagged with the first entity it overlaps.
        format: a record format name to read every record as; None or ``auto``: detect it.

    Returns:
        Examples with ``id`` (the record's ``id`` or ``"<file>:<line>"``), ``tokens``, ``tags``.

    Raises:
        DataError: with file:line for an unknown or mixed shape, empty text or label, offsets outside
            the text, overlapping spans, or an entity text that differs from the text at its offsets.
    """
    path = _existing(path)
    check_format(format)
    if format in FILE_FORMATS:
        raise _err(path, None, f"data.format={format} but this is a {path.suffix} file",
                   f"set data.format=null (JSON exports are recognised by their shape) or point data.path at "
                   f"{FILE_FORMATS[format]}")
    records = list(_json_records(path))
    forced = format not in (None, "auto")
    name = format if forced else _detect(path, records)
    fmt = RECORD_FORMATS[name]
    examples, skipped, several = [], 0, 0
    for line, rec in records:
        shape = _shape(rec)
        if forced and shape is not None and shape != name and not (fmt.generic and RECORD_FORMATS[shape].generic):
            raise _err(path, line, f"record is {shape}, not {name} ({fmt.shape})",
                       f"set data.format={shape}, or null to tell from the file")
        if not isinstance(rec, Mapping):
            raise _err(path, line, f"record is a {type(rec).__name__}, not an object", f"write {fmt.shape}")
        got = fmt.extract(rec, path, line)
        if got is None:
            skipped += 1
            continue
        several += name == "label_studio" and sum(not a.get("was_cancelled") for a in rec.get("annotations") or []
                                                  if isinstance(a, Mapping)) > 1
        text, raw, rec_id, *words = got
        examples.append(spans_to_example(path, line, text, raw, char_level, rec_id, words[0] if words else None))
    log.info("%s: read %d records as %s (%s)", path, len(examples), name,
             "data.format" if forced else "told from their shape; data.format= forces one")
    if skipped:
        log.warning("%s: %d of %d records skipped: %s", path, skipped, len(records),
                    "Label Studio tasks without a finished annotation" if name == "label_studio"
                    else "Prodigy answers 'reject'/'ignore'")
    if several:
        log.warning("%s: %d tasks have several annotations; the first of each was used", path, several)
    return examples
