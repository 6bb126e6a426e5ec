"""Text classification / sentiment datamodule: embedded Chinese news, hub sets, or local tables."""
from __future__ import annotations

from typing import Any

from localize.data.cls_readers import class_weights, label_names_from, load_cls, truncate_text
from localize.data.datamodule import LocalizeDataModule, hub_reachable, normalize
from localize.data.errors import DataError


class ClassificationDataModule(LocalizeDataModule):
    """One label per text.

    Args:
        text_field: text column of local files (``data.path``).
        label_field: label column of local files.
        max_chars: character pre-truncation budget before tokenisation (long news bodies).
        truncation: ``head`` or ``head_tail`` (keeps the start and the end of long texts).
        use_class_weights: weight the loss by inverse class frequency (imbalanced data).
        split_sizes: fractions for a single local file.
        **kwargs: see ``LocalizeDataModule``.
    """

    task_name = "classification"

    def __init__(
        self,
        *args: Any,
        text_field: str = "text",
        label_field: str = "label",
        max_chars: int = 2000,
        truncation: str = "head",
        use_class_weights: bool = False,
        split_sizes: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.text_field, self.label_field = text_field, label_field
        self.max_chars, self.truncation = max_chars, truncation
        self.use_class_weights = use_class_weights
        self.split_sizes = dict(split_sizes) if split_sizes else None

    def module_kwargs(self) -> dict[str, Any]:
        weights = class_weights(self.splits["train"], self.label_names).tolist() if self.use_class_weights else None
        return {"label_names": self.label_names, "class_weights": weights}

    def _load_splits(self) -> dict[str, list[dict]]:
        info: dict[str, Any] = {}
        if self.path:
            splits = load_cls("table", self.path, self.text_field, self.label_field, self.split_sizes, self.seed,
                              info=info)
            source = self.path
        elif self.offline:
            splits = load_cls(self.offline, None, seed=self.seed, info=info)
            source = self.offline
        elif self.hub and hub_reachable():
            splits, source = _load_hub(self.hub, self.hub_config), f"hub:{self.hub}/{self.hub_config}"
        else:
            raise self.no_data_error()
        self.data_info.update(source=source, truncation=self.truncation, max_chars=self.max_chars, **info)
        # Fixed before any max_train_examples cap, so a small subset keeps the full label set.
        self._label_names = label_names_from(splits["train"], self.fixed_labels)
        known = set(self._label_names)
        for name in ("validation", "test"):
            unknown = sorted({ex["label"] for ex in splits.get(name, [])} - known)
            if unknown:
                raise DataError(f"{source} [{name}]: labels {unknown} never occur in train: add training "
                                f"examples or fix the labels (data.labels=[...] fixes the label set)")
        return splits

    def _encode(self, example: dict[str, Any]) -> dict[str, Any]:
        text = truncate_text(normalize(example["text"], self.normalization), self.max_chars, self.truncation)
        enc = self.tokenizer(text, truncation=True, max_length=self.max_length)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "labels": self.label_names.index(example["label"])}


def _load_hub(hub_id: str, config: str | None) -> dict[str, list[dict]]:
    """A hub text-classification dataset with ``text`` and ClassLabel ``label`` columns."""
    import datasets

    try:
        ds = datasets.load_dataset(hub_id, config)
    except Exception as e:  # network, auth or missing config: one message with the way out
        raise DataError(f"cannot load hub dataset {hub_id}/{config}: {e}. Offline, use data.path=...") from e
    feature = ds["train"].features["label"]
    name = feature.int2str if hasattr(feature, "int2str") else str
    return {split: [{"id": f"{split}-{i}", "text": r["text"], "label": name(r["label"])}
                    for i, r in enumerate(ds[split])] for split in ("train", "validation", "test")}
