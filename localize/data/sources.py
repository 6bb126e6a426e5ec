"""Where a task's examples come from, and the one way an unsplit corpus is split.

Each task has one registry (:func:`task_sources`): readers by file suffix, packaged offline corpora
by name, and a hub row converter. :meth:`TaskSources.load` takes the first source that applies —
``data.path``, then the packaged corpus (``data.offline``; translation: ``data.gettext``), then the
hub when it is reachable — and :func:`source_key` names the same choice from a config without
reading anything. :func:`split_examples` cuts every unsplit corpus, with or without groups.

    NER = task_sources("ner", "NER")

    @NER.reader(".conll", ".iob")
    def read_conll(path, sep=None): ...
"""
from __future__ import annotations

import hashlib
import inspect
import math
import os
import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from localize.data.errors import DataError

Splits = dict[str, list[dict]]
SPLITS = ("train", "validation", "test")
# Common spellings of split names in file names, paths and configs.
SPLIT_ALIASES = {"train": "train", "dev": "validation", "valid": "validation", "val": "validation",
                 "validation": "validation", "test": "test"}  # fmt: skip
# Config keys naming a packaged corpus: ``offline`` (NER, classification), ``gettext`` (translation).
PACKAGED_KEYS = ("offline", "gettext")


def hub_reachable() -> bool:
    """Hub datasets are used only when the user has not declared the machine offline."""
    return os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "", "false") and os.environ.get(
        "HF_DATASETS_OFFLINE", "0"
    ) in ("0", "", "false")


def load_hub(hub_id: str, config: str | None = None, split: str | None = None) -> Any:
    """``datasets.load_dataset(hub_id, config, split=split)`` with the one error message and its fix."""
    import datasets  # heavy import, only needed here

    try:
        return datasets.load_dataset(hub_id, config, split=split)
    except Exception as e:  # network, auth or missing config: one message with the way out
        raise DataError(f"cannot load hub dataset {hub_id}/{config}: {e}. Offline, use data.path=...") from e


class HubRow(NamedTuple):
    """Where a hub row comes from, for the task's converter (ids, ClassLabel names, language pair)."""

    hub_id: str
    config: str | None
    split: str  # ours: train / validation / test
    index: int
    features: Any  # the split's ``datasets.Features``


@dataclass
class Loaded:
    """What :meth:`TaskSources.load` read: examples (one pool, or split name → examples) and from where."""

    data: list[dict] | Splits
    source: Any  # data.path as given, the corpus name, or "hub:<id>/<config>"
    kind: str  # "path", "offline" or "hub"


def _accepted(fn: Callable, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options ``fn`` takes: word-level readers have no ``char_level``, most have no ``info``."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return dict(options)
    names = {p.name for p in params}
    return {k: v for k, v in options.items() if k in names}


@dataclass
class TaskSources:
    """The data sources of one task.

    Args:
        task: registry key (``ner``, ``classification``, ``translation``).
        title: name used in messages (``NER``).
        folder: what a ``data.path`` folder holds: ``"splits"`` (one file per split, named
            ``train``/``dev``/``validation``/``test`` + a known suffix) or ``"pool"`` (every file with a
            known suffix below it, read as one corpus).
        prepare: ``prepare(examples, origin, info)`` on each file's or corpus's examples as read (NER: IOB2 repair).
    """

    task: str
    title: str
    folder: str = "splits"
    prepare: Callable[[list[dict], str, dict | None], Any] | None = None
    readers: dict[str, Callable[..., list[dict]]] = field(default_factory=dict)
    packaged: dict[str, Callable[..., list[dict] | Splits]] = field(default_factory=dict)
    available: dict[str, Callable[..., bool]] = field(default_factory=dict)
    folders: dict[str, Callable[..., list[dict]]] = field(default_factory=dict)
    hub_row: Callable[[Mapping[str, Any], HubRow], dict] | None = None

    # ---- registration -------------------------------------------------------------------------
    def reader(self, *suffixes: str) -> Callable:
        """Decorator: ``fn(path, **options) -> examples`` reads files with these suffixes."""
        def register(fn: Callable) -> Callable:
            for s in suffixes:
                self.readers["." + s.lower().lstrip(".")] = fn
            return fn
        return register

    def folder_reader(self, marker: str) -> Callable:
        """Decorator: ``fn(folder, **options) -> examples`` reads a folder holding ``*<marker>`` files as
        one corpus (brat: ``.ann`` files beside their ``.txt``), where ``data.path`` or one split names it."""
        def register(fn: Callable) -> Callable:
            self.folders["." + marker.lower().lstrip(".")] = fn
            return fn
        return register

    def _folder_fn(self, path: Path) -> Callable[..., list[dict]] | None:
        return next((fn for marker, fn in self.folders.items() if next(path.glob("*" + marker), None)), None)

    def corpus(self, name: str, available: Callable[..., bool] | None = None) -> Callable:
        """Decorator: ``fn(**options) -> examples | splits`` loads the packaged corpus ``name``.

        ``available(**options)`` False (e.g. no catalogs installed) lets :meth:`load` fall through to the hub.
        """
        def register(fn: Callable) -> Callable:
            self.packaged[name] = fn
            if available is not None:
                self.available[name] = available
            return fn
        return register

    def hub(self, convert: Callable[[Mapping[str, Any], HubRow], dict]) -> Callable:
        """Decorator: ``convert(row, at) -> example`` turns one hub row into an example."""
        self.hub_row = convert
        return convert

    # ---- reading ------------------------------------------------------------------------------
    def read_file(self, path: str | os.PathLike, info: dict | None = None, **options: Any) -> list[dict]:
        """One file through the reader of its suffix (``info``: gets ``prepare``'s counts).

        Raises:
            DataError: no reader for the suffix (naming ``data.path``, the formats and the fix).
        """
        path = Path(path)
        fn = self._folder_fn(path) if path.is_dir() else self.readers.get(path.suffix.lower())
        if fn is None:
            raise DataError(f"{path}: no {self.title} reader for {path.suffix or 'suffix-less'!r} files "
                            f"(data.path={path}; formats: {sorted(self.readers)}). Fix: convert the file to "
                            f"one of those formats and name it with that suffix, or point data.path at another file")
        examples = fn(path, **_accepted(fn, options))
        if self.prepare is not None:
            self.prepare(examples, str(path), info)
        return examples

    def read_local(self, path: Any, info: dict | None = None, **options: Any) -> list[dict] | Splits:
        """``data.path``: a file (one pool), a folder (see ``folder``; one with a :meth:`folder_reader`'s
        files is one pool, and so is a split's subfolder of them) or a mapping split → file or folder.

        A folder or mapping with only a train file is one pool, split like a single file.
        """
        if path is None:
            raise DataError("no input given; set data.path= to a file, a directory or {train: ..., validation: ...}")
        if isinstance(path, Mapping):  # also Hydra DictConfig
            unknown = [k for k in path if k not in SPLIT_ALIASES]
            if unknown:
                raise DataError(f"data.path has unknown split names {unknown}; use {sorted(SPLIT_ALIASES)}")
            files = {SPLIT_ALIASES[k]: Path(v) for k, v in path.items()}
        elif Path(path).is_dir() and self._folder_fn(Path(path)):
            return self.read_file(path, info=info, **options)
        elif Path(path).is_dir() and self.folder == "pool":
            files = sorted(f for f in Path(path).rglob("*") if f.suffix.lower() in self.readers)
            if not files:
                raise DataError(f"no {'/'.join(sorted(self.readers))} file under '{path}': data.path must be "
                                f"a {self.title} file or a folder of them")
            if info is not None:
                info["files"] = [str(f) for f in files]
            return [ex for f in files for ex in self.read_file(f, info=info, **options)]
        elif Path(path).is_dir():
            found = [p for p in sorted(Path(path).iterdir()) if p.stem in SPLIT_ALIASES
                     and (p.suffix.lower() in self.readers or p.is_dir() and self._folder_fn(p))]
            files = {SPLIT_ALIASES[p.stem]: p for p in found}
            if len(files) != len(found):
                raise DataError(f"{path}: several files for one split: {[p.name for p in found]}; keep one per split")
        elif Path(path).is_file():
            if info is not None and self.folder == "pool":
                info["files"] = [str(path)]
            return self.read_file(path, info=info, **options)
        else:
            raise DataError(f"{path}: file not found. Fix: check data.path (relative paths resolve against the "
                            f"working directory, which Hydra may change; use an absolute path)")
        if "train" not in files:
            raise DataError(f"{path}: no train file; name one train{{{','.join(sorted(self.readers))}}} "
                            f"or set data.path.train=")
        splits = {name: self.read_file(p, info=info, **options) for name, p in files.items()}
        return splits["train"] if len(splits) == 1 else splits

    def read_corpus(self, name: str, **options: Any) -> list[dict] | Splits:
        """The packaged corpus ``name`` (``hironsan``, ``inews``, ``gettext``)."""
        fn = self.packaged.get(name)
        if fn is None:
            raise DataError(f"no packaged {self.title} corpus {name!r}: set data.offline to one of "
                            f"{sorted(self.packaged)}, or use data.path=<file>")
        data = fn(**_accepted(fn, options))
        if self.prepare is not None and isinstance(data, list):
            self.prepare(data, name, options.get("info"))
        return data

    def read_hub(self, hub_id: str, config: str | None, limits: Mapping[str, int | None] | None = None) -> Splits:
        """The hub dataset's train/validation/test splits (``limits``: at most that many rows of a split)."""
        if self.hub_row is None:
            raise DataError(f"{self.title} has no hub converter: use data.path=<file>")
        out = {}
        for split in SPLITS:
            n = (limits or {}).get(split)
            ds = load_hub(hub_id, config, split=f"{split}[:{n}]" if n else split)
            features = getattr(ds, "features", None)
            out[split] = [self.hub_row(row, HubRow(hub_id, config, split, i, features)) for i, row in enumerate(ds)]
        return out

    def load(self, *, path: Any = None, offline: str | None = None, hub: str | None = None,
             hub_config: str | None = None, options: Mapping[str, Any] | None = None,
             hub_limits: Mapping[str, int | None] | None = None, info: dict | None = None,
             no_data: Callable[[], Exception] | None = None) -> Loaded:
        """The first source that applies: ``path``, the packaged corpus, the hub (when reachable).

        Args:
            options: reader/corpus options; each gets only those it takes (``char_level``, ``info``...).
            hub_limits: split → row cap for the hub.
            info: filled by readers with facts for the run record; a corpus may set ``info["source"]``.
            no_data: builds the error raised when no source applies.
        """
        options = {**(options or {}), **({"info": info} if info is not None else {})}
        if path:
            return Loaded(self.read_local(path, **options), path, "path")
        ready = self.available.get(offline)
        if offline and (ready is None or ready(**_accepted(ready, options))):
            data = self.read_corpus(offline, **options)
            return Loaded(data, info.pop("source", offline) if info is not None else offline, "offline")
        if hub and hub_reachable():
            return Loaded(self.read_hub(hub, hub_config, hub_limits), f"hub:{hub}/{hub_config}", "hub")
        raise (no_data() if no_data else DataError(f"no {self.title} data: set data.path=<file>"))


REGISTRY: dict[str, TaskSources] = {}


def task_sources(task: str, title: str | None = None, **kwargs: Any) -> TaskSources:
    """The registry of ``task`` (created on first use; ``kwargs`` as :class:`TaskSources`)."""
    if task not in REGISTRY:
        REGISTRY[task] = TaskSources(task, title or task, **kwargs)
    return REGISTRY[task]


def source_key(data: Any) -> tuple:
    """The data a datamodule config will read (path first, then the packaged corpus, then the hub).

    Two configs with the same key read the same examples, so the same seed and sizes give the same splits.
    """
    def get(key: str) -> Any:
        return data.get(key) if isinstance(data, Mapping) else getattr(data, key, None)

    path = get("path")
    if isinstance(path, Mapping):
        return ("path", tuple(sorted((str(k), os.path.abspath(str(v))) for k, v in path.items())))
    if path:
        return ("path", os.path.abspath(str(path)))
    for key in PACKAGED_KEYS:
        if get(key):
            return ("offline", get(key)) if key == "offline" else ("offline", f"{key}:{get(key)}")
    return ("hub", get("hub"), get("hub_config"))


# ---- splitting --------------------------------------------------------------------------------
def source_hash(key: str, seed: int | str = 0) -> float:
    """Deterministic position of ``key`` in [0, 1): sha1 of ``"<seed>\\x00<key>"``."""
    h = hashlib.sha1(f"{seed}\x00{key}".encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def _sizes(sizes: Mapping[str, Any] | Sequence[Any], use_all: bool) -> tuple[dict[str, Any], bool]:
    """``{name: size}`` in cut order and whether the sizes are fractions; one None is the rest."""
    if isinstance(sizes, Mapping):
        named = {str(k): v for k, v in sizes.items()}
    elif isinstance(sizes, Sequence) and not isinstance(sizes, str) and len(sizes) == 3:
        named = dict(zip(SPLITS, sizes))
    else:
        raise DataError(f"data.split_sizes={sizes!r} must be (train, validation, test) or {{split: size}}")
    given = [v for v in named.values() if v is not None]
    if (not named or len(given) < len(named) - 1
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in given)):
        raise DataError(f"data.split_sizes={named} must be non-negative numbers (at most one None: the rest)")
    fractions = any(isinstance(v, float) for v in given)  # an int 0 or 1 among fractions is a fraction
    if fractions and any(v > 1 for v in given):
        raise DataError(f"split_examples: sizes {tuple(named.values())} mix counts and fractions or exceed 1. "
                        f"Fix: give three ints or three fractions summing to at most 1")
    if fractions:
        named = {k: None if v is None else float(v) for k, v in named.items()}
        given = [float(v) for v in given]
        rest = 1.0
        for v in given:
            rest -= v
        named = {k: rest if v is None else v for k, v in named.items()}
        total = sum(named.values())
        if rest < -1e-9 or total > 1 + 1e-6 or (use_all and not math.isclose(total, 1.0, abs_tol=1e-6)):
            raise DataError(f"data.split_sizes={named} must be counts, or fractions summing to 1"
                            + ("" if use_all else " or less"))
    return named, fractions


def split_examples(examples: Sequence[dict], sizes: Mapping[str, Any] | Sequence[Any] = (400, 50, 50),
                   seed: int | str = 42, *, group: Callable[[dict], Hashable] | None = None,
                   keep_order: bool = False, use_all: bool = False, folds: int | None = None,
                   fold: int | None = None, dev: float | int | None = None) -> Splits:
    """Cut ``examples`` into disjoint, seeded splits: the one split of every unsplit corpus.

    Args:
        examples: All examples.
        sizes: ``(train, validation, test)`` or ``{split: size}``, cut in that order; all counts
            (ints) or all fractions (floats summing to at most 1); one None takes the rest.
        seed: Seed of the shuffle (no ``group``) or of the group hash.
        group: Examples with the same ``group(ex)`` land in the same split (translation: the
            English source, so no source is in two splits). Each group sits at ``source_hash`` of
            its key: fractions are intervals of that position, so a group's split depends on its
            own hash only and stays put when the pool grows; counts are numbers of groups in hash
            order, so the splits listed first do not change when a later size changes.
        keep_order: each split keeps the input order (default: shuffled / hash order).
        use_all: fractions must sum to 1 (no example left out).
        folds, fold, dev: K-fold cross-validation, test = fold ``fold`` (``localize.data.folds``).

    Without ``group`` the order is ``random.Random(seed).shuffle`` of the indices; fractions become
    ``floor(f * n)`` examples, and when they sum to 1 the rounding remainder goes to the first split.

    Returns:
        ``{split: [examples]}`` for every split named in ``sizes``.

    Raises:
        DataError: invalid sizes, more than available, or a split with a positive size left empty.
    """
    if folds is not None or fold is not None:
        from localize.data.folds import fold_split  # it cuts each fold's training part with this function
        return fold_split(examples, sizes, seed, folds, fold, dev, group=group, keep_order=keep_order)
    named, fractions = _sizes(sizes, use_all)
    if group is None:
        n, unit = len(examples), "examples"
        order = list(range(n))
        random.Random(seed).shuffle(order)
        counts = _counts(named, fractions, n, unit)
        out, start = {}, 0
        for name, c in counts.items():
            idx = order[start:start + c]
            out[name] = [examples[i] for i in (sorted(idx) if keep_order else idx)]
            start += c
    else:
        keys = [group(ex) for ex in examples]
        pos = {k: source_hash(str(k), seed) for k in set(keys)}
        n, unit = len(pos), "groups"
        split_of: dict[Hashable, str] = {}
        if fractions:
            for k, h in pos.items():
                edge = 0.0
                for name, f in named.items():
                    edge += f
                    if h < edge:
                        split_of[k] = name
                        break
        else:
            counts = _counts(named, fractions, n, unit)
            ranked = iter(sorted(pos, key=lambda k: (pos[k], str(k))))
            split_of = {k: name for name, c in counts.items() for _, k in zip(range(c), ranked)}
        idx = range(len(examples)) if keep_order else sorted(range(len(examples)), key=lambda i: (pos[keys[i]], i))
        out = {name: [] for name in named}
        for i in idx:
            if keys[i] in split_of:
                out[split_of[keys[i]]].append(examples[i])
    empty = [name for name, v in named.items() if v and not out[name]]
    if empty:
        raise DataError(f"{n} {unit} are too few for data.split_sizes={named} (empty: {empty}); "
                        f"add data or provide split files")
    return out


def _counts(named: dict[str, Any], fractions: bool, n: int, unit: str) -> dict[str, int]:
    if fractions:
        counts = {k: math.floor(f * n) for k, f in named.items()}
        if math.isclose(sum(named.values()), 1.0, abs_tol=1e-6):
            first = next(iter(counts))
            counts[first] += n - sum(counts.values())
        return counts
    rest = n - sum(v for v in named.values() if v is not None)
    counts = {k: rest if v is None else v for k, v in named.items()}
    if min(counts.values()) < 0 or sum(counts.values()) > n:
        raise DataError(f"split_examples: sizes {tuple(named.values())} need {sum(v or 0 for v in named.values())} "
                        f"{unit}, only {n} available. Fix: lower data.split_sizes")
    return counts

