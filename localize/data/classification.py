"""Text classification / sentiment datamodule: embedded Chinese news, hub sets, or local tables."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from localize.data.cls_checks import check_label_spellings
from localize.data.cls_readers import (CLS, DEFAULT_SPLIT_SIZES, class_weights, finish_splits,
                                     label_names_from, truncate_text)
from localize.data.datamodule import LocalizeDataModule, normalize
from localize.data.errors import DataError, label_override
from localize.data.few_shot import per_label_sample
from localize.data.noise import flip_class

log = logging.getLogger(__name__)


class ClassificationDataModule(LocalizeDataModule):
    """One label per text.

    Args:
        text_field: text column of local files (``data.path``).
        label_field: label column of local files.
        max_chars: character pre-truncation budget before tokenisation (long news bodies).
        truncation: ``head`` or ``head_tail`` (keeps the start and the end of long texts).
        use_class_weights: weight the loss by inverse class frequency (imbalanced data).
        split_sizes: fractions for a single local file.
        train_per_label: keep this many training examples of every label (seeded; few-shot curves).
        back_translation: for ``data.augment=[back_translation]``: texts → their round trips through two
            translation runs (``localize.back_translation.RoundTrip``, built from ``data.back_translation``).
        **kwargs: see ``LocalizeDataModule``.
    """

    task_name = "classification"
    flip_label = staticmethod(flip_class)
    source = CLS

    def __init__(
        self,
        *args: Any,
        text_field: str = "text",
        label_field: str = "label",
        max_chars: int = 2000,
        truncation: str = "head",
        use_class_weights: bool = False,
        split_sizes: dict[str, float] | None = None,
        train_per_label: int | None = None,
        back_translation: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # data.augment=[back_translation]: the round trip Hydra built (localize.back_translation.RoundTrip).
        self.augment_options = {"back_translation": back_translation}
        self.text_field, self.label_field = text_field, label_field
        self.max_chars, self.truncation = max_chars, truncation
        self.use_class_weights = use_class_weights
        self.split_sizes = dict(split_sizes) if split_sizes else None
        self.train_per_label = train_per_label

    def module_kwargs(self) -> dict[str, Any]:
        weights = class_weights(self.splits["train"], self.label_names).tolist() if self.use_class_weights else None
        return {**super().module_kwargs(), "class_weights": weights}

    def _load_splits(self) -> dict[str, list[dict]]:
        info: dict[str, Any] = {}
        loaded = CLS.load(path=self.path, offline=self.offline, hub=self.hub, hub_config=self.hub_config,
                          options=self.reader_options, no_data=self.no_data_error)
        source = loaded.source
        # Local and packaged data are split if needed and de-duplicated; hub splits are used as published.
        if isinstance(loaded.data, dict):
            self.reject_cv(source)
        else:  # the one split (or CV fold) of a pool; finish_splits then only de-duplicates
            loaded.data = self.split_pool(loaded.data, self.split_sizes or DEFAULT_SPLIT_SIZES, keep_order=True,
                                          use_all=True)  # = cls_readers.split_examples
        splits = loaded.data if loaded.kind == "hub" else finish_splits(loaded.data, source, self.split_sizes,
                                                                         self.seed, info=info)
        check_label_spellings(splits, source)
        self.data_info.update(source=source, truncation=self.truncation, max_chars=self.max_chars, **info)
        if info.get("leakage_removed", {}).get("train_docs"):
            self.data_info.setdefault("dropped", {})["train_also_in_dev_or_test"] = info["leakage_removed"]["train_docs"]
        cut = {name: sum(len(ex["text"]) > self.max_chars for ex in exs) for name, exs in splits.items()}
        self.data_info["cut_to_max_chars"] = cut
        if any(cut.values()):
            log.warning("%s: texts longer than data.max_chars=%d are cut (%s): %s", source, self.max_chars,
                        self.truncation, ", ".join(f"{n} of {len(splits[k])} {k}" for k, n in cut.items() if n))
        # Fixed before any max_train_examples cap, so a small subset keeps the full label set; the
        # folds of a CV run share the corpus's (their pooled predictions are scored together).
        self._label_names = label_names_from([ex for exs in splits.values() for ex in exs] if "cv" in self.data_info
                                             else splits["train"], self.fixed_labels)
        known = set(self._label_names)
        for name in ("validation", "test"):
            unknown = sorted({ex["label"] for ex in splits.get(name, [])} - known)
            if unknown:
                fix = ("add them to the label set" if self.fixed_labels else
                       "keep them as classes without training examples")
                every = self._label_names + [lab for lab in unknown if lab not in known]
                raise DataError(f"{source} [{name}]: labels {unknown} never occur in train. Fix: add training "
                                f"examples, fix those rows, or {fix}: {label_override(every)}")
        if self.train_per_label is not None:  # after the label set is fixed: it stays the corpus's
            of = len(splits["train"])
            splits["train"] = per_label_sample(splits["train"], self.train_per_label, self.seed, f"{source} [train]")
            self.data_info["train_per_label"] = {"k": self.train_per_label, "kept": len(splits["train"]), "of": of}
        return splits

    @property
    def reader_options(self) -> dict[str, Any]:
        return {"text_field": self.text_field, "label_field": self.label_field}

    def check_examples(self, examples: list[dict], source: str) -> None:
        """Examples from outside the reader (corrections, replay): a text and a label of this label set."""
        known = set(self.label_names)
        bad = sorted({str(ex.get("label")) for ex in examples if ex.get("label") not in known})
        if bad or any(not isinstance(ex.get("text"), str) for ex in examples):
            raise DataError(f"{source}: labels {bad} are not in the label set {sorted(known)} (or a text is missing). "
                            f"Fix: use these labels, or {label_override(sorted(known) + bad)}")

    def _encode(self, example: dict[str, Any]) -> dict[str, Any]:
        text = truncate_text(normalize(example["text"], self.normalization), self.max_chars, self.truncation)
        enc = self.tokenizer(text, truncation=True, max_length=self.max_length)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "labels": self.label_names.index(example["label"])}

    def encode_texts(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Raw texts normalised and truncated as in training (``_encode`` without a label)."""
        rows = []
        for text in texts:
            prepared = truncate_text(normalize(text, self.normalization), self.max_chars, self.truncation)
            enc = self.tokenizer(prepared, truncation=True, max_length=self.max_length)
            rows.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
        return rows

    def decode_outputs(self, texts: Sequence[str], rows: Sequence[dict[str, Any]],
                       outputs: Sequence[Any]) -> list[dict[str, Any]]:
        """Per text: ``text``, ``label`` (argmax), ``score`` (its probability) and ``probabilities``
        (label -> softmax probability, every label)."""
        labels = self.known_labels
        out = []
        for text, probs in zip(texts, outputs):
            p = [float(x) for x in probs]
            best = max(range(len(p)), key=p.__getitem__)
            out.append({"text": text, "label": labels[best], "score": p[best], "probabilities": dict(zip(labels, p))})
        return out
