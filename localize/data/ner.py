"""NER datamodule: local CoNLL / span-JSON files, the embedded Japanese corpus, or hub datasets."""
from __future__ import annotations

import logging
from typing import Any

from localize.data.alignment import align_words
from localize.data.datamodule import LocalizeDataModule, hub_reachable, normalize
from localize.data.errors import DataError
from localize.data.ner_readers import label_list_from, load_ner, split_examples, validate_tags

log = logging.getLogger(__name__)


class NerDataModule(LocalizeDataModule):
    """Word-level NER data aligned to subword tokens through character offsets.

    Args:
        split_sizes: train/dev/test sizes (ints or fractions) for sources without splits.
        char_level: label characters instead of words for span-JSON input (scripts without spaces).
        **kwargs: see ``LocalizeDataModule``.
    """

    task_name = "ner"

    def __init__(
        self,
        *args: Any,
        split_sizes: tuple = (400, 50, 50),
        char_level: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.split_sizes = tuple(split_sizes)
        self.space_separated = bool(self.locale.get("space_separated", True))
        self.char_level = (not self.space_separated) if char_level is None else char_level

    def _load_splits(self) -> dict[str, list[dict]]:
        if self.path or self.offline:
            source = self.path or self.offline
            # Only span-annotated text has a choice of unit; word-level formats ignore it.
            unit = {"char_level": self.char_level} if str(self.path).endswith((".json", ".jsonl")) else {}
            examples = load_ner(source=None if self.path else self.offline, path=self.path, **unit)
            splits = examples if isinstance(examples, dict) else split_examples(examples, self.split_sizes, self.seed)
        elif self.hub and hub_reachable():
            source = f"hub:{self.hub}/{self.hub_config}"
            splits = _load_hub(self.hub, self.hub_config)
        else:
            raise self.no_data_error()
        self.data_info.update(source=source, labelling="word (first token overlapping the word's first char)",
                              space_separated=self.space_separated, normalization=self.normalization)
        if self.fixed_labels:
            for name, exs in splits.items():
                validate_tags(exs, self.fixed_labels, f"{source} [{name}]")
        else:
            known = label_list_from(splits["train"])
            for name in ("validation", "test"):
                validate_tags(splits[name], known, f"{source} [{name}]")
        # Fixed before any max_train_examples cap, so a small subset keeps the full label set.
        self._label_names = self.fixed_labels or label_list_from(splits["train"])
        return splits

    def _encode(self, example: dict[str, Any]) -> dict[str, Any]:
        label2id = {t: i for i, t in enumerate(self.label_names)}
        words = [normalize(w, self.normalization) for w in example["tokens"]]
        enc = align_words(words, example["tags"], self.tokenizer, label2id,
                          space_separated=self.space_separated, max_length=self.max_length)
        return {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "labels": enc["labels"],
            "word_index": enc["word_index"],
            "word_labels": [label2id[t] for t in example["tags"]],
        }


def _load_hub(hub_id: str, config: str | None) -> dict[str, list[dict]]:
    """A hub token-classification dataset (WikiANN-style ``tokens`` + ClassLabel ``ner_tags``)."""
    import datasets

    try:
        ds = datasets.load_dataset(hub_id, config)
    except Exception as e:  # network, auth or missing config: one message with the way out
        raise DataError(f"cannot load hub dataset {hub_id}/{config}: {e}. Offline, use data.path=...") from e
    names = ds["train"].features["ner_tags"].feature.names
    return {
        split: [{"id": f"{split}-{i}", "tokens": r["tokens"], "tags": [names[t] for t in r["ner_tags"]]}
                for i, r in enumerate(ds[split])]
        for split in ("train", "validation", "test")
    }
