"""Shared LightningDataModule plumbing: examples → tokenised ``datasets`` → length-grouped loaders.

Task datamodules implement ``_load_splits`` (raw examples per split) and ``_encode`` (one example →
model inputs); everything else — caching, batching, padding — lives here once.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import pathlib
import uuid
import unicodedata
from typing import Any, Sequence

import datasets
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from localize.data.collate import PadCollator
from localize.data.digests import _code_digest, _examples_sha1, _plain, _tested, _tokenizer_digest
from localize.data.errors import DataError
from localize.data.sampler import LengthGroupedBatchSampler, padding_fraction
from localize.data.folds import fold_ids
from localize.data.shaping import shape_splits
from localize.data.stages import check_part
from localize.data.sources import split_examples
from localize.models.backbones import load_tokenizer
from localize.models.cache import cache_root, ensure_folder

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
STAGE_SPLITS = {"fit": ("train", "validation"), "validate": ("validation",), "test": ("test",), "predict": ("test",)}


def normalize(text: str, form: str | None) -> str:
    """Locale text normalisation (e.g. NFKC folds CJK full-width forms); None keeps text as is."""
    return unicodedata.normalize(form, text) if form else text


# Settings that change batching, not the encoded rows (caps and seed already shape the examples).
_NOT_ENCODING = {"batch_size", "eval_batch_size", "num_workers", "group_by_length", "max_train_examples",
                 "max_eval_examples", "train_per_label", "seed", "cache_tokenized", "data_info", "encoded", "path", "trainer"}


class LocalizeDataModule(pl.LightningDataModule):
    """Base datamodule.

    Args:
        tokenizer: model ``name_or_path`` whose tokenizer encodes the data.
        locale: the composed locale config (dict) or None.
        path: local data file/folder (overrides the locale's datasets).
        offline: embedded dataset of the locale for this task (e.g. ``hironsan``, ``inews``).
        hub: hub dataset id, used when the hub is reachable.
        hub_config: hub dataset configuration (e.g. the language).
        labels: fixed label set; None reads it from the training data.
        batch_size: training batch size.
        eval_batch_size: evaluation batch size.
        max_length: maximum tokens per example.
        max_train_examples: cap on training examples (low-resource experiments, fast runs).
        max_eval_examples: cap on validation/test examples (smoke tests only: scores are then partial).
        group_by_length: length-grouped batches (less padding) on single-process runs.
        num_workers: DataLoader workers.
        seed: data seed (splits, shuffling).
        cache_tokenized: keep tokenised splits under ``$LOCALIZE_CACHE/tokenized``, keyed by the
            tokenizer, the examples, the encoding settings and the data code, so a second run with
            the same data and settings does not re-tokenise.
        cv_folds: K-fold cross-validation of an unsplit corpus (None: the plain split); every example
            is in exactly one test fold (``sources.split_examples``).
        cv_fold: the fold tested in this run, ``0 .. cv_folds-1``.
        cv_dev: dev share of the fold's training part (fraction or count); None keeps the
            ``split_sizes`` train : dev ratio (NER 400/50/50: 1/9 of the other folds).
        parts: cut train and dev into this many disjoint seeded shares and keep share ``part``
            (continual stages on one corpus: each stage learns from other sentences; test stays whole).
        part: the share kept, ``0 .. parts-1``.
        replay_from: example files (JSONL, one example per line, as ``localize.continual`` writes
            them from earlier stages' training splits) to mix into this run's training split.
        replay_size: how many of those examples (an int), or a fraction of them (< 1); drawn with
            ``seed``. None: all of them.
        label_noise: give this share of the examples of ``label_noise_splits`` a wrong label
            (``localize.data.noise``: seeded per example, the same in every fold); None: as given.
        label_noise_splits: the splits it applies to.
        train_ids: a file of ids (``localize.select``'s ``selected.jsonl``, or one per line): train on
            those training examples only (``localize.data.pool.keep_ids``); None: all of them.
        corrections: a file of corrected examples (``localize.predict`` output fixed by hand, or any
            file ``data.path`` reads): each replaces the example with the same text wherever it is,
            the others join the training split (``localize.data.shaping``).
        augment: operations that add augmented copies of the training examples
            (``localize.data.augment``); empty: none. ``augment_factor``: copies per example.
        perturb: operations applied in place to the test split (robustness evaluation).

    The order these settings apply in: ``localize.data.shaping``.
    """

    # The task's label flip for data.label_noise (localize.data.noise); None: the task has no labels.
    flip_label = None
    # The task's sources (localize.data.sources.task_sources) when data.corrections may read its files.
    source = None
    augment_options: dict[str, Any] = {}  # per-operation settings (augment.check_augment), set by a task

    task_name = "task"

    def __init__(
        self,
        tokenizer: str,
        locale: dict[str, Any] | None = None,
        path: str | None = None,
        offline: str | None = None,
        hub: str | None = None,
        hub_config: str | None = None,
        labels: list[str] | None = None,
        batch_size: int = 16,
        eval_batch_size: int = 32,
        max_length: int = 256,
        max_train_examples: int | None = None,
        max_eval_examples: int | None = None,
        group_by_length: bool = True,
        num_workers: int = 0,
        seed: int = 42,
        cache_tokenized: bool = True,
        cv_folds: int | None = None,
        cv_fold: int | None = None,
        cv_dev: float | int | None = None,
        parts: int | None = None,
        part: int | None = None,
        replay_from: Sequence[str] | None = None,
        replay_size: float | int | None = None,
        label_noise: float | None = None,
        label_noise_splits: Sequence[str] = ("train",),
        train_ids: str | None = None,
        augment: Sequence[str] | None = None,
        augment_factor: int = 1,
        corrections: str | None = None,
        perturb: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("data.batch_size", batch_size), ("data.eval_batch_size", eval_batch_size),
                            ("data.max_length", max_length)):
            if value is None or value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}: set {name}=<positive integer>")
        for name, value in (("data.max_train_examples", max_train_examples),
                            ("data.max_eval_examples", max_eval_examples)):
            # 0 used to mean "no cap" and a negative cap dropped examples from the end: refuse both.
            if value is not None and value <= 0:
                raise ValueError(f"{name}={value} is not a cap: set {name}=null to use every example, or a "
                                 f"positive count")
        self.tokenizer_name, self.locale, self.path = tokenizer, dict(locale or {}), path
        self.offline, self.hub, self.hub_config = offline, hub, hub_config
        self.fixed_labels = list(labels) if labels else None
        self.normalization = self.locale.get("normalization")
        self._label_names: list[str] | None = None
        self.batch_size, self.eval_batch_size, self.max_length = batch_size, eval_batch_size, max_length
        self.max_train_examples, self.max_eval_examples = max_train_examples, max_eval_examples
        self.group_by_length = group_by_length
        self.num_workers, self.seed, self.cache_tokenized = num_workers, seed, cache_tokenized
        self.cv_folds, self.cv_fold, self.cv_dev = cv_folds, cv_fold, cv_dev
        self.parts, self.part = (check_part(parts, part) if parts is not None or part is not None else (None, None))
        self.replay_from, self.replay_size = [str(p) for p in replay_from or []], replay_size
        self.label_noise, self.label_noise_splits = label_noise, [str(s) for s in label_noise_splits or ()]
        self.train_ids = train_ids
        self.augment, self.augment_factor = [str(a) for a in augment or []], augment_factor
        self.corrections = corrections
        self.perturb = [str(p) for p in perturb or []]
        self._pool_index: dict[int, int] | None = None  # id(example) -> position in the pool (CV record)
        self._splits: dict[str, list[dict]] | None = None
        self._tokenizer = None
        self.tokenizer_kwargs: dict[str, Any] = {}  # e.g. NLLB's src_lang/tgt_lang (translation)
        self.encoded: dict[str, datasets.Dataset] = {}
        self.data_info: dict[str, Any] = {}

    # ---- task hooks ------------------------------------------------------------------------
    def _load_splits(self) -> dict[str, list[dict]]:
        raise NotImplementedError

    def _encode(self, example: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def encode_texts(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Raw texts → model-input rows for ``predict_step``, through the training encoding (normalisation,
        segmentation, alignment, truncation); extra fields are for ``decode_outputs``."""
        raise NotImplementedError(f"{type(self).__name__} does not encode raw text")

    def decode_outputs(self, texts: Sequence[str], rows: Sequence[dict[str, Any]],
                       outputs: Sequence[Any]) -> list[dict[str, Any]]:
        """``predict_step`` outputs (one per row of ``encode_texts``) → one JSON-ready dict per text."""
        raise NotImplementedError(f"{type(self).__name__} does not decode predictions")

    def check_examples(self, examples: list[dict], source: str) -> None:
        """Check examples that come from outside the task's own reader (replay); tasks override."""

    @property
    def reader_options(self) -> dict[str, Any]:
        """The options the task's readers take (``data.path`` and ``data.corrections`` read alike)."""
        return {}

    def read_file(self, path: str) -> list[dict]:
        """Every example of a local file of this task (any form ``data.path`` reads), unsplit
        (``data.corrections``); tasks that can be corrected name their ``source``."""
        if self.source is None:
            raise DataError(f"data.corrections: {self.task_name} has no corrections reader. Fix: data.corrections=null")
        data = self.source.read_local(path, **self.reader_options)
        return [ex for exs in data.values() for ex in exs] if isinstance(data, dict) else list(data)

    def example_text(self, example: dict) -> str:
        """The text an example is known by (corrections replace examples with the same text)."""
        return str(example.get("text", ""))

    @property
    def known_labels(self) -> list[str] | None:
        """The label set without reading any data when it was given (inference: the run's labels)."""
        return self.fixed_labels or self.label_names

    @property
    def label_names(self) -> list[str] | None:
        """The label set, fixed when the data is read (before any max_train_examples cap)."""
        if self._label_names is None:
            self.splits
        return self._label_names

    def module_kwargs(self) -> dict[str, Any]:
        """Data-derived constructor arguments of the task's LightningModule (e.g. the label set)."""
        return {"label_names": getattr(self, "label_names", None), **self.inference_kwargs()}

    def inference_kwargs(self) -> dict[str, Any]:
        """What a stored run's module needs beyond its labels (run.json ``module_inputs``; icl's verbalizers)."""
        return {}

    # ---- shared ------------------------------------------------------------------------------
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.tokenizer_name, **self.tokenizer_kwargs)
        return self._tokenizer

    @property
    def splits(self) -> dict[str, list[dict]]:
        """Raw examples per split, read once."""
        if self._splits is None:
            self.check_max_length()
            splits = self._load_splits()
            for name in SPLITS:
                if not splits.get(name):
                    raise DataError(
                        f"the {name} split is empty ({self.data_info.get('source', self.path)}): "
                        f"give more data or change data.split_sizes"
                    )
            splits = shape_splits(self, splits)
            self._splits = splits
            self.data_info["sizes"] = {k: len(v) for k, v in splits.items()}
            if "cv" in self.data_info:  # after the caps: the examples this run really tests
                self.data_info["cv"].update(_tested(splits["test"], self._pool_index or {}))
        return self._splits

    def split_pool(self, pool: list[dict], sizes: Any, group: Any = None, **options: Any) -> dict[str, list[dict]]:
        """The split of an unsplit corpus (``sources.split_examples``): the plain seeded split, or
        with ``cv_folds`` the ``cv_fold``-th fold, recorded in ``data_info["cv"]`` (folds, fold sizes,
        the pool positions and a hash of the tested examples) for pooling the folds' predictions.

        Args:
            pool: every example of the corpus, in the order read.
            sizes: ``data.split_sizes``.
            group: examples with the same ``group(ex)`` stay in one split / one fold.
            **options: ``split_examples``'s ``keep_order`` / ``use_all`` (classification: both).
        """
        if self.cv_folds is None and self.cv_fold is None:
            return split_examples(pool, sizes, self.seed, group=group, **options)
        splits = split_examples(pool, sizes, self.seed, group=group, folds=self.cv_folds, fold=self.cv_fold,
                                dev=self.cv_dev, **options)
        counts = [0] * self.cv_folds
        for f in fold_ids(pool, self.cv_folds, self.seed, group=group):
            counts[f] += 1
        self._pool_index = {id(ex): i for i, ex in enumerate(pool)}
        self.data_info["cv"] = {"folds": self.cv_folds, "fold": self.cv_fold, "dev": self.cv_dev,
                                "pool": len(pool), "pool_sha1": _examples_sha1(pool), "fold_sizes": counts,
                                "sizes": {k: len(v) for k, v in splits.items()}}
        return splits

    def reject_cv(self, source: Any) -> None:
        """Cross-validation folds one pool: data that comes split (split files, the hub) cannot be folded."""
        if self.cv_folds is not None or self.cv_fold is not None:
            raise DataError(f"data.cv_folds={self.cv_folds}: {source} comes split into train/validation/test, "
                            f"and cross-validation needs one unsplit corpus. Fix: data.path=<one file or folder "
                            f"of one corpus>, or data.cv_folds=null data.cv_fold=null")

    def check_max_length(self) -> None:
        """Refuse a ``max_length`` the tokenizer's special tokens fill: nothing of the text would be
        left (NaN losses at 2 for BERT-style [CLS] x [SEP]), or the tokenizer ignores it (at 1)."""
        special = self.tokenizer.num_special_tokens_to_add(pair=False)
        if self.max_length <= special:
            raise ValueError(f"data.max_length={self.max_length} leaves no room for text: the tokenizer "
                             f"({self.tokenizer_name}) adds {special} special token(s) to every example; set "
                             f"data.max_length={special + 1} or more (default 256)")

    def setup(self, stage: str | None = None) -> None:
        # Tokenise only what the stage needs (a test-only evaluation never touches train).
        needed = STAGE_SPLITS.get(stage, SPLITS)
        raw = self.splits
        for name in needed:
            if name in self.encoded:
                continue
            self.encoded[name] = self._tokenise(name, raw[name])
            self._count_truncated(name)
        if "train" in self.encoded and "padding_fraction" not in self.data_info:
            lens = [len(x) for x in self.encoded["train"]["input_ids"]]
            plain = [list(range(i, min(i + self.batch_size, len(lens)))) for i in range(0, len(lens), self.batch_size)]
            grouped = list(LengthGroupedBatchSampler(lens, self.batch_size, self.seed))
            self.data_info["padding_fraction"] = {"plain": padding_fraction(lens, plain),
                                                  "grouped": padding_fraction(lens, grouped)}

    def _count_truncated(self, name: str) -> None:
        """Record and warn how many examples of a split were cut to ``max_length`` tokens (an example of
        exactly that length counts too: after truncation the two look alike)."""
        lens = [len(x) for x in self.encoded[name]["input_ids"]]
        cut = sum(n >= self.max_length for n in lens)
        self.data_info.setdefault("truncated", {})[name] = cut
        if cut:
            log.warning("%s: %d of %d examples cut to data.max_length=%d tokens (the rest of each is not seen); "
                        "raise data.max_length to keep them whole", name, cut, len(lens), self.max_length)

    def _tokenise(self, name: str, examples: list[dict]) -> datasets.Dataset:
        ds = datasets.Dataset.from_list(examples)

        def encode() -> datasets.Dataset:
            # Our own fingerprint: else datasets hashes the bound method by pickling the datamodule, trainer
            # and loggers (W&B's warns when pickled). Its cache is unused; ours is keyed by _cache_key.
            return ds.map(self._encode_with_index, with_indices=True, remove_columns=ds.column_names,
                          keep_in_memory=True, load_from_cache_file=False, desc=f"tokenise {name}",
                          new_fingerprint=uuid.uuid4().hex)

        if not self.cache_tokenized:
            return encode()
        key = f"{self.task_name}-{name}-{self._cache_key(examples)}"
        built: list[bool] = []

        def build(out: pathlib.Path, work: pathlib.Path) -> dict:
            encode().save_to_disk(str(out))
            built.append(True)
            return {"split": name, "examples": len(examples), "tokenizer": self.tokenizer_name}

        # Atomic and locked like the model cache: an interrupted write is never loaded.
        folder = ensure_folder(key, build, cache_dir=cache_root() / "tokenized")
        self.data_info.setdefault("tokenized_cache", {})[name] = "built" if built else "reused"
        log.info("tokenised %s: %s %s", name, "built" if built else "reused", folder)
        return datasets.load_from_disk(str(folder), keep_in_memory=True)

    @functools.cached_property
    def _tokenizer_sha(self) -> str:
        return _tokenizer_digest(self.tokenizer)

    def _cache_key(self, examples: list[dict]) -> str:
        """Hash of everything that decides the encoded rows: the examples, the encoding settings,
        the label set, the tokenizer (its full serialisation, not only its name) and the data code."""
        h = hashlib.sha256()
        settings = {k: v for k, v in sorted(vars(self).items())
                    if not k.startswith("_") and k not in _NOT_ENCODING and _plain(v)}
        h.update(json.dumps([type(self).__qualname__, settings, self.label_names], sort_keys=True,
                            ensure_ascii=False, default=str).encode())
        h.update(json.dumps(examples, sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(self._tokenizer_sha.encode())
        h.update(_code_digest().encode())
        return h.hexdigest()[:24]

    def _encode_with_index(self, example: dict[str, Any], idx: int) -> dict[str, Any]:
        # The dataset index lets distributed evaluation drop DistributedSampler's duplicates.
        return {**self._encode(example), "index": idx}

    def _collator(self) -> PadCollator:
        return PadCollator(self.tokenizer.pad_token_id)

    def _distributed(self) -> bool:
        return (getattr(getattr(self, "trainer", None), "world_size", 1) or 1) > 1

    def train_dataloader(self) -> DataLoader:
        ds = self.encoded["train"]
        if self.group_by_length and not self._distributed():
            sampler = LengthGroupedBatchSampler([len(x) for x in ds["input_ids"]], self.batch_size, self.seed)
            return DataLoader(ds, batch_sampler=sampler, collate_fn=self._collator(), num_workers=self.num_workers)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=True, collate_fn=self._collator(),
                          num_workers=self.num_workers)

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(self.encoded[split], batch_size=self.eval_batch_size, shuffle=False,
                          collate_fn=self._collator(), num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def no_data_error(self) -> DataError:
        code = self.locale.get("code", "<none>")
        return DataError(
            f"no offline {self.task_name} data for locale '{code}'"
            + ("" if self.locale else " (no locale given: add +locale=ja or similar)")
            + ": point at local files with data.path=/path/to/file, or allow hub access (unset HF_HUB_OFFLINE)"
            + " for the locale's hub dataset"
        )
