"""NER datamodule: local CoNLL / span-JSON files, the embedded Japanese corpus, or hub datasets."""
from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from collections.abc import Sequence

from localize.data.alignment import align_words
from localize.data.datamodule import LocalizeDataModule, normalize
from localize.data.entities import entity_spans
from localize.data.ner_formats import check_format
from localize.data.noise import flip_entity_type
from localize.data.errors import DataError
from localize.data.ner_readers import NER, label_list_from, label_override, map_labels, validate_tags
from localize.data.segment import segmenter_for

log = logging.getLogger(__name__)


def _keep_types(splits: dict[str, list[dict]], types: Sequence[str], source: str) -> dict[str, list[dict]]:
    """Copies of the examples with every entity type outside ``types`` read as ``O`` (the readers'
    examples may be shared); a type the data lacks is refused."""
    present = sorted({t[2:] for exs in splits.values() for ex in exs for t in ex["tags"] if t != "O"})
    missing = [t for t in types if t not in present]
    if missing:
        raise DataError(f"data.entity_types names {missing}, which {source} does not have. Fix: data.entity_types="
                        f"[{','.join(t for t in types if t in present) or present[0]}] (its types: {present})")
    out = {k: [dict(ex) for ex in exs] for k, exs in splits.items()}
    for exs in out.values():
        map_labels(exs, {t: None for t in present if t not in types})
    return out


def _offsets(words: Sequence[str], sep: str) -> list[tuple[int, int]]:
    spans, at = [], 0
    for w in words:
        spans.append((at, at + len(w)))
        at += len(w) + len(sep)
    return spans


def _union(first: Sequence[str], then: Sequence[str]) -> list[str]:
    """``first`` in its order, then what ``then`` adds (a B-/I- pair per new type)."""
    return list(first) + [t for t in then if t not in first]


class NerDataModule(LocalizeDataModule):
    """Word-level NER data aligned to subword tokens through character offsets.

    Args:
        split_sizes: train/dev/test sizes (ints or fractions) for sources without splits.
        char_level: label characters instead of words for span input (JSON exports, brat; scripts without
            spaces). None: the locale's (``not space_separated``).
        segmenter: word segmenter for raw text at inference (``localize.data.segment``; None: the
            locale's, falling back to characters when it is not installed).
        sep: CoNLL column separator (None: any whitespace; ``tab``; any character, e.g. ``|``).
        token_col: CoNLL column of the token.
        tag_col: CoNLL column of the tag (-1: the last).
        format: how to read ``path`` (``localize.data.ner_formats``: doccano, label_studio, prodigy,
            entities, brat, spans, conll); None: from the suffix and the records' shape.
        entity_types: keep only these entity types (the others read as ``O``) in every split, and score
            only them (a prediction of another type counts as ``O``): a class-incremental stage. They are
            the label set (with ``O``), also where a share's train split lacks a rare one.
        prior_labels: labels that come first in the label set, in this order, before what the data
            adds (``${run_labels:${init_from}}``: a run that starts from another keeps its head's rows).
        **kwargs: see ``LocalizeDataModule``.
    """

    task_name = "ner"
    flip_label = staticmethod(flip_entity_type)
    source = NER

    def __init__(
        self,
        *args: Any,
        split_sizes: tuple = (400, 50, 50),
        char_level: bool | None = None,
        segmenter: str | None = None,
        sep: str | None = None,
        token_col: int = 0,
        tag_col: int = -1,
        format: str | None = None,
        entity_types: Sequence[str] | None = None,
        prior_labels: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        check_format(format)
        self.entity_types = sorted(str(t) for t in entity_types) if entity_types else None
        self.prior_labels = list(prior_labels) if prior_labels else []
        self.format = format
        self.sep, self.token_col, self.tag_col = sep, token_col, tag_col
        self.split_sizes = tuple(split_sizes)
        self.space_separated = bool(self.locale.get("space_separated", True))
        self.char_level = (not self.space_separated) if char_level is None else char_level
        self.segmenter = segmenter

    def _load_splits(self) -> dict[str, list[dict]]:
        # Only span-annotated text has a choice of unit: word-level readers do not take char_level.
        info: dict[str, Any] = {}
        loaded = NER.load(path=self.path, offline=self.offline, hub=self.hub, hub_config=self.hub_config,
                          options=self.reader_options, no_data=self.no_data_error, info=info)
        source = loaded.source
        data = loaded.data
        if self.entity_types:
            kept = _keep_types(data if isinstance(data, dict) else {"all": data}, self.entity_types, source)
            data = kept if isinstance(data, dict) else kept["all"]
        if isinstance(data, dict):
            self.reject_cv(source)
        splits = data if isinstance(data, dict) else self.split_pool(data, self.split_sizes)
        self.data_info.update(source=source, labelling="word (first token overlapping the word's first char)",
                              space_separated=self.space_separated, normalization=self.normalization,
                              repaired_tags=info.get("repaired_tags", 0))
        if info.get("repaired_tags"):
            log.warning("%s: %d IOB2 tags repaired (I-X without a preceding X entity read as B-X)", source,
                        info["repaired_tags"])
        every = label_list_from([ex for exs in splits.values() for ex in exs])
        if self.fixed_labels:
            for name, exs in splits.items():
                validate_tags(exs, self.fixed_labels, f"{source} [{name}]",
                              f"add them to the label set, {label_override(_union(self.fixed_labels, every))}, "
                              f"or fix or drop those sentences")
        elif "cv" not in self.data_info and not self.entity_types:  # CV: the corpus's label set, shared by every fold
            known = label_list_from(splits["train"])
            for name in ("validation", "test"):
                validate_tags(splits[name], known, f"{source} [{name}] (labels never seen in train)",
                              f"keep them as classes without training examples, {label_override(every)}, "
                              f"or fix or drop those sentences")
        # Fixed before any max_train_examples cap, so a small subset keeps the full label set. The
        # folds of a CV run share one: their pooled predictions are scored together, and a rare type
        # may sit in one test fold only.
        # Named entity types are the label set, also a type this share's train split happens to lack.
        own = (["O"] + [f"{p}-{t}" for t in self.entity_types for p in "BI"] if self.entity_types
               else every if "cv" in self.data_info else label_list_from(splits["train"]))
        self._label_names = self.fixed_labels or _union(self.prior_labels, own)
        return splits

    def check_examples(self, examples: list[dict], source: str) -> None:
        """Replayed examples: tokens and tags of one length, every tag in this run's label set."""
        bad = next((i for i, ex in enumerate(examples) if not isinstance(ex.get("tokens"), list)
                    or not isinstance(ex.get("tags"), list) or len(ex["tokens"]) != len(ex["tags"])), None)
        if bad is not None:
            raise DataError(f"{source}: example {bad} is no NER example (tokens and tags lists of one length). "
                            f"Fix: replay files written by localize.continual from an NER stage")
        validate_tags(examples, self.label_names, source,
                      f"replay from stages whose labels this run keeps ({label_override(self.label_names)})")

    @property
    def scored_types(self) -> list[str] | None:
        """The entity types scored (None: all): the module reads a prediction of another type as ``O``."""
        return self.entity_types

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

    def encode_texts(self, texts: Sequence[str], words: Sequence[Sequence[str]] | None = None) -> list[dict[str, Any]]:
        """Raw text cut into words by the locale's segmenter (or, with ``words``, the texts' own
        words: a pool of corpus sentences), each word normalised and aligned as in training; ``spans``
        keep the words' offsets into the original text."""
        name, segment = segmenter_for(self.locale, self.segmenter)
        given = words
        if given is not None:
            name, texts = "given", [self.join_words(w) for w in given]
        rows = []
        for k, text in enumerate(texts):
            spans = segment(text) if given is None else _offsets(given[k], " " if self.space_separated else "")
            words = [normalize(text[s:e], self.normalization) for s, e in spans] or [""]
            enc = align_words(words, None, self.tokenizer, {}, space_separated=self.space_separated,
                              max_length=self.max_length)
            rows.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                         "word_index": enc["word_index"], "spans": spans, "segmenter": name})
        return rows

    def module_kwargs(self) -> dict[str, Any]:
        # The train split's tag frequencies, in label order: module.prior_bias starts the head at this prior.
        counts = Counter(t for ex in self.splits["train"] for t in ex["tags"])
        total = sum(counts.values()) or 1
        return {**super().module_kwargs(), "label_prior": [counts.get(t, 0) / total for t in self.label_names]}

    @property
    def reader_options(self) -> dict[str, Any]:
        return {"char_level": self.char_level, "sep": self.sep, "token_col": self.token_col, "tag_col": self.tag_col,
                "format": self.format}

    def example_text(self, example: dict) -> str:
        return self.join_words(example["tokens"])

    def join_words(self, words: Sequence[str]) -> str:
        """A sentence's words as one text (spaces only where the locale writes them)."""
        return (" " if self.space_separated else "").join(words)

    def decode_outputs(self, texts: Sequence[str], rows: Sequence[dict[str, Any]],
                       outputs: Sequence[Any]) -> list[dict[str, Any]]:
        """Per text: ``text``; ``tokens`` (``text``/``start``/``end``/``tag`` per word, offsets into
        the original text); ``entities`` (strict IOB2, as scored); ``segmenter``; ``truncated_words``
        (words past ``max_length``, tagged ``O``). An output is a row of tag ids, or ``{"tags",
        "scores"}`` (``predict_scored_words``): then each word gets ``score`` (its tag's probability;
        None when truncated) and each entity ``score``, the mean of its words' scores."""
        labels = self.known_labels
        out = []
        for text, row, pred in zip(texts, rows, outputs):
            sp = row["spans"]
            scored = isinstance(pred, dict)
            ids = [int(k) for k in (pred["tags"] if scored else pred)[:len(sp)]]
            tags = [labels[k] if k >= 0 else "O" for k in ids]
            tokens = [{"text": text[s:e], "start": s, "end": e, "tag": t} for (s, e), t in zip(sp, tags)]
            spans = entity_spans(tags)
            entities = [{"text": text[sp[i][0]:sp[j - 1][1]], "start": sp[i][0], "end": sp[j - 1][1], "label": lab}
                        for i, j, lab in spans]
            if scored:
                scores = [float(x) if k >= 0 else None for k, x in zip(ids, pred["scores"][:len(sp)])]
                for tok, x in zip(tokens, scores):
                    tok["score"] = x
                for ent, (i, j, _) in zip(entities, spans):
                    ent["score"] = sum(scores[i:j]) / (j - i)
            out.append({"text": text, "tokens": tokens, "entities": entities, "segmenter": row["segmenter"],
                        "truncated_words": sum(k < 0 for k in ids)})
        return out
