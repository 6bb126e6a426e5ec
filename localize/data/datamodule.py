"""Shared LightningDataModule plumbing: examples → tokenised ``datasets`` → length-grouped loaders.

Task datamodules implement ``_load_splits`` (raw examples per split) and ``_encode`` (one example →
model inputs); everything else — caching, batching, padding — lives here once.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import pathlib
import unicodedata
from typing import Any

import datasets
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from localize.data.collate import PadCollator
from localize.data.errors import DataError
from localize.data.sampler import LengthGroupedBatchSampler, padding_fraction
from localize.models.backbones import load_tokenizer
from localize.models.cache import cache_root, ensure_folder

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
STAGE_SPLITS = {"fit": ("train", "validation"), "validate": ("validation",), "test": ("test",),
                "predict": ("test",)}


def hub_reachable() -> bool:
    """Hub datasets are used only when the user has not declared the machine offline."""
    return os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "", "false") and os.environ.get(
        "HF_DATASETS_OFFLINE", "0"
    ) in ("0", "", "false")


def normalize(text: str, form: str | None) -> str:
    """Locale text normalisation (e.g. NFKC folds CJK full-width forms); None keeps text as is."""
    return unicodedata.normalize(form, text) if form else text


# Settings that change batching, not the encoded rows (caps and seed already shape the examples).
_NOT_ENCODING = {"batch_size", "eval_batch_size", "num_workers", "group_by_length", "max_train_examples",
                 "max_eval_examples", "seed", "cache_tokenized", "data_info", "encoded", "path", "trainer"}


def _plain(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except TypeError:
        return False


def _tokenizer_digest(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """The data package's source: a change in how examples are encoded invalidates the cache.
    Read once per process: it describes the code that was imported, not later edits on disk."""
    h = hashlib.sha256()
    for f in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()


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
    """

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
    ) -> None:
        super().__init__()
        for name, value in (("data.batch_size", batch_size), ("data.eval_batch_size", eval_batch_size),
                            ("data.max_length", max_length)):
            if value is None or value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}: set {name}=<positive integer>")
        self.tokenizer_name, self.locale, self.path = tokenizer, dict(locale or {}), path
        self.offline, self.hub, self.hub_config = offline, hub, hub_config
        self.fixed_labels = list(labels) if labels else None
        self.normalization = self.locale.get("normalization")
        self._label_names: list[str] | None = None
        self.batch_size, self.eval_batch_size, self.max_length = batch_size, eval_batch_size, max_length
        self.max_train_examples, self.group_by_length = max_train_examples, group_by_length
        self.max_eval_examples = max_eval_examples
        self.num_workers, self.seed = num_workers, seed
        self.cache_tokenized = cache_tokenized
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

    @property
    def label_names(self) -> list[str] | None:
        """The label set, fixed when the data is read (before any max_train_examples cap)."""
        if self._label_names is None:
            self.splits
        return self._label_names

    def module_kwargs(self) -> dict[str, Any]:
        """Data-derived constructor arguments of the task's LightningModule (e.g. the label set)."""
        return {"label_names": getattr(self, "label_names", None)}

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
            splits = self._load_splits()
            for name in SPLITS:
                if not splits.get(name):
                    raise DataError(
                        f"the {name} split is empty ({self.data_info.get('source', self.path)}): "
                        f"give more data or change data.split_sizes"
                    )
            caps = {"train": self.max_train_examples, "validation": self.max_eval_examples,
                    "test": self.max_eval_examples}
            splits = {k: v[: caps[k]] if caps.get(k) else v for k, v in splits.items()}
            self._splits = splits
            self.data_info["sizes"] = {k: len(v) for k, v in splits.items()}
        return self._splits

    def setup(self, stage: str | None = None) -> None:
        # Tokenise only what the stage needs (a test-only evaluation never touches train).
        needed = STAGE_SPLITS.get(stage, SPLITS)
        raw = self.splits
        for name in needed:
            if name in self.encoded:
                continue
            self.encoded[name] = self._tokenise(name, raw[name])
        if "train" in self.encoded and "padding_fraction" not in self.data_info:
            lens = [len(x) for x in self.encoded["train"]["input_ids"]]
            plain = [list(range(i, min(i + self.batch_size, len(lens)))) for i in range(0, len(lens), self.batch_size)]
            grouped = list(LengthGroupedBatchSampler(lens, self.batch_size, self.seed))
            self.data_info["padding_fraction"] = {"plain": padding_fraction(lens, plain),
                                                  "grouped": padding_fraction(lens, grouped)}

    def _tokenise(self, name: str, examples: list[dict]) -> datasets.Dataset:
        ds = datasets.Dataset.from_list(examples)

        def encode() -> datasets.Dataset:
            return ds.map(self._encode_with_index, with_indices=True, remove_columns=ds.column_names,
                          keep_in_memory=True, load_from_cache_file=False, desc=f"tokenise {name}")

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
        trainer = getattr(self, "trainer", None)
        return bool(trainer is not None and trainer.world_size > 1)

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
