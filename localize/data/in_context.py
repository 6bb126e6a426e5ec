"""In-context prompting for classification (``adapter=icl``): each input becomes a prompt of ``k``
demonstrations from the train split plus the input, and each label a word (its verbalizer) whose
likelihood after the prompt the causal LM scores (``localize.models.in_context``).

    python -m localize.train +locale=zh task=sentiment model=gemma3_270m adapter=icl adapter.k=6

Demonstrations (``selection``):

- ``random``: one seeded draw for every input, balanced over the labels (round-robin over the classes),
  so the prompt prefix is shared and the label prior of the demonstrations is flat;
- ``nearest``: per input, the ``k`` training examples closest to it by sentence embedding
  (``localize.models.embed``, the embedded e5 by default; Liu et al. 2022), the closest last.

With ``calibrate`` each example also carries a content-free prompt (the same demonstrations, the input
replaced by ``content_free``): contextual calibration (Zhao et al. 2021) divides the label probabilities
by that prompt's. The chosen demonstration ids, the template and the verbalizers go to ``data_info``
(the run record's ``data``).
"""
from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from localize.data.classification import ClassificationDataModule
from localize.data.cls_readers import truncate_text
from localize.data.collate import PadCollator
from localize.data.datamodule import normalize
from localize.data.errors import DataError

log = logging.getLogger(__name__)

SELECTIONS = ("random", "nearest")
SEPARATOR = "\n\n"


class InContextClassificationDataModule(ClassificationDataModule):
    """Prompts with demonstrations for a causal LM; labels are scored, never trained.

    Args:
        k: demonstrations per prompt (0: zero-shot).
        selection: ``random`` or ``nearest`` (see the module docstring).
        embedder: sentence embedder for ``nearest`` (an embedded name, a local folder or a hub id).
        template: one demonstration, with ``{text}`` and ``{label}``; ``{label}`` ends it (the scored
            continuation follows the prompt).
        verbalizers: label -> word (None: the label names themselves).
        calibrate: also encode the content-free prompt of every example (``cf_input_ids``).
        content_free: the input text of the content-free prompt.
        demo_chars: character budget of each demonstration's text (the input keeps ``max_chars``).
        **kwargs: see ``ClassificationDataModule``; ``max_length`` caps a whole prompt.
    """

    def __init__(self, *args: Any, k: int = 4, selection: str = "random", embedder: str = "e5_small",
                 template: str = "Text: {text}\nLabel: {label}", verbalizers: dict[str, str] | None = None,
                 calibrate: bool = False, content_free: str = "N/A", demo_chars: int = 200, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if selection not in SELECTIONS:
            raise ValueError(f"adapter.selection={selection!r} is not one of {list(SELECTIONS)}. Fix: adapter.selection=random")
        if k < 0:
            raise ValueError(f"adapter.k={k} must be >= 0 (0: zero-shot). Fix: adapter.k=4")
        if "{text}" not in template or not template.endswith("{label}"):
            raise ValueError(f"data.template={template!r} must hold {{text}} and end with {{label}} (the scored "
                             "continuation). Fix: data.template='Text: {text}\\nLabel: {label}'")
        self.k, self.selection, self.embedder, self.template = k, selection, embedder, template
        self.verbalizers = dict(verbalizers) if verbalizers else None
        self.calibrate, self.content_free, self.demo_chars = calibrate, content_free, demo_chars
        # Prompts depend on the train split (the demonstrations), which the tokenised-split cache key does
        # not cover; they are cheap to build, so they are never cached.
        self.cache_tokenized = False
        self._demos: dict[str, list[int]] | None = None  # example id -> train positions (nearest)
        self._shared: list[int] | None = None  # the one draw (random)
        self._split = ""

    # ---- labels as words ------------------------------------------------------------------------
    @property
    def label_words(self) -> list[str]:
        """Each label's verbalizer, in label-id order."""
        words = self.verbalizers or {}
        missing = [lab for lab in self.label_names if self.verbalizers and lab not in words]
        if missing:
            every = {lab: words.get(lab, lab) for lab in self.label_names}
            raise DataError(f"data.verbalizers has no word for labels {missing}. Fix: data.verbalizers="
                            "{" + ",".join(f"{a}:{b}" for a, b in every.items()) + "}")
        return [str(words.get(lab, lab)) for lab in self.label_names]

    def inference_kwargs(self) -> dict[str, Any]:
        # Scored continuations: no special tokens (the prompt has them), each word after the template's ": ".
        ids = [self.tokenizer(" " + w if self._spaced() else w, add_special_tokens=False)["input_ids"]
               for w in self.label_words]
        if any(not i for i in ids):
            raise DataError(f"a verbalizer of {self.label_words} tokenises to nothing. Fix: data.verbalizers=... "
                            "with a word for every label")
        if len(set(map(tuple, ids))) < len(ids):
            raise DataError(f"two labels share one verbalizer {self.label_words}: they cannot be told apart. "
                            "Fix: data.verbalizers=... with a different word per label")
        return {"verbalizer_ids": ids}

    def _spaced(self) -> bool:
        """Whether a label word follows the template with a space (a template ending ``: {label}``)."""
        return self.template.endswith(" {label}")

    # ---- demonstrations -------------------------------------------------------------------------
    def _text(self, example: dict[str, Any], chars: int) -> str:
        return truncate_text(normalize(example["text"], self.normalization), chars, self.truncation)

    def _shared_draw(self, k: int | None = None) -> list[int]:
        """``k`` train positions, round-robin over the labels (each label's examples shuffled, seeded)."""
        k = self.k if k is None else k
        train = self.splits["train"]
        by_label: dict[str, list[int]] = {}
        for i, ex in enumerate(train):
            by_label.setdefault(ex["label"], []).append(i)
        rng = random.Random(self.seed)
        queues = [rng.sample(v, len(v)) for _, v in sorted(by_label.items())]
        picked: list[int] = []
        while len(picked) < min(k, len(train)):
            for q in queues:
                if q and len(picked) < k:
                    picked.append(q.pop())
        rng.shuffle(picked)
        return picked

    def _nearest(self) -> dict[str, list[int]]:
        """Per validation/test example id: its ``k`` nearest train positions, the closest last."""
        queries = [ex for name in ("validation", "test") for ex in self.splits.get(name, [])]
        closest = self._closest([self._text(ex, self.demo_chars) for ex in queries])
        return {str(ex["id"]): row for ex, row in zip(queries, closest)}

    def _closest(self, texts: list[str]) -> list[list[int]]:
        """Per text, the ``k`` train positions nearest by sentence embedding (one pass over train), the closest last."""
        from localize.models.embed import sentence_embeddings

        train = self.splits["train"]
        emb = sentence_embeddings([self._text(ex, self.demo_chars) for ex in train] + list(texts), self.embedder)
        order = (-(emb[len(train):] @ emb[:len(train)].T)).argsort(axis=1)[:, :self.k]
        return [[int(j) for j in row[::-1]] for row in order]

    def demonstrations(self, example: dict[str, Any], k: int | None = None) -> list[int]:
        """The train positions shown before ``example`` (with ``k`` of them: what a run at that k shows)."""
        k = self.k if k is None else k
        if k == 0:
            return []
        if self.selection == "random":
            if k != self.k:
                return self._shared_draw(k)
            if self._shared is None:
                self._shared = self._shared_draw()
            return self._shared
        if self._demos is None:
            self._demos = self._nearest()
        return self._demos[str(example["id"])][-k:]  # the closest k (the list ends with the closest)

    def demo_block(self, demos: Sequence[int]) -> str:
        """The demonstrations, each in the template with its label word, each followed by the separator."""
        train, words = self.splits["train"], dict(zip(self.label_names, self.label_words))
        return "".join(self.template.format(text=self._text(train[j], self.demo_chars), label=words[train[j]["label"]])
                       + SEPARATOR for j in demos)

    def prompt(self, text: str, demos: Sequence[int]) -> str:
        """The demonstrations, then ``text`` in the template up to its ``{label}``."""
        head = self.template[:-len("{label}")].rstrip(" ") if self._spaced() else self.template[:-len("{label}")]
        return self.demo_block(demos) + head.format(text=text)

    def _row(self, text: str, demos: list[int]) -> dict[str, Any]:
        """A prompt's ids; ``prefix_length``: how many of them are the shared draw's demonstrations (the
        module runs those once), 0 when nearest neighbours differ per input or the tokens do not split there."""
        row = self._ids(self.prompt(text, demos))
        block = self._ids(self.demo_block(demos))["input_ids"] if demos and self.selection == "random" else []
        row["prefix_length"] = len(block) if block and row["input_ids"][:len(block)] == block else 0
        if self.calibrate:
            row["cf_input_ids"] = self._ids(self.prompt(self.content_free, demos))["input_ids"]
        return row

    # ---- encoding -------------------------------------------------------------------------------
    def _tokenise(self, name: str, examples: list[dict]):
        self._split = name
        if name != "train":
            self._check_lengths(name, examples)
        return super()._tokenise(name, examples)

    def _prompt_length(self, example: dict[str, Any], k: int | None = None) -> int:
        return len(self._ids(self.prompt(self._text(example, self.max_chars), self.demonstrations(example, k)))["input_ids"])

    def _check_lengths(self, name: str, examples: list[dict]) -> None:
        """Refuse a split whose prompts do not fit, naming a max_length and a k with which all of them do."""
        context = self.tokenizer.model_max_length  # huge (a sentinel) when the tokenizer does not say
        context = context if context < 10**8 else None
        limit = min(self.max_length, context) if context else self.max_length
        lengths = [self._prompt_length(ex) for ex in examples]
        over = [i for i, n in enumerate(lengths) if n > limit]
        if not over:
            return
        longest = max(lengths)
        fits = next((k for k in range(self.k - 1, -1, -1)
                     if all(self._prompt_length(ex, k) <= limit for ex in examples)), None)
        fixes = ([f"data.max_length={longest}"] if context is None or longest <= context else []) + (
            [f"adapter.k={fits} (fewer demonstrations)"] if fits is not None else [])
        raise DataError(f"{len(over)} of {len(examples)} {name} prompts are longer than {limit} tokens "
                        f"(data.max_length={self.max_length}, the model's context {context}); the longest, "
                        f"{examples[lengths.index(longest)].get('id')}, has {longest}. Fix: "
                        + (" or ".join(fixes) if fixes else f"shorter texts (data.max_chars, data.demo_chars)"))

    def _encode(self, example: dict[str, Any]) -> dict[str, Any]:
        label = self.label_names.index(example["label"])
        if self._split == "train":  # never scored: the plain text (the train split only feeds demonstrations)
            return {**self._ids(self._text(example, self.max_chars)), "labels": label}
        demos = self.demonstrations(example)
        self._record(demos)
        return {**self._row(self._text(example, self.max_chars), demos), "labels": label}

    def _ids(self, prompt: str) -> dict[str, list[int]]:
        # The model's BOS (Gemma's <bos>) and nothing else: an encoder tokenizer's [SEP] would end the prompt.
        bos = self.tokenizer.bos_token_id
        ids = ([bos] if bos is not None else []) + self.tokenizer(prompt, add_special_tokens=False,
                                                                  verbose=False)["input_ids"]
        return {"input_ids": ids, "attention_mask": [1] * len(ids)}

    def _record(self, demos: list[int]) -> None:
        info = self.data_info.setdefault("in_context", {
            "k": self.k, "selection": self.selection, "template": self.template, "calibrate": self.calibrate,
            "verbalizers": dict(zip(self.label_names, self.label_words)),
            "embedder": self.embedder if self.selection == "nearest" else None})
        ids = [str(self.splits["train"][j].get("id", j)) for j in demos]
        if self.selection == "random":
            info["demonstrations"] = ids
        else:  # per input: how often each train example was shown
            counts = info.setdefault("demonstration_counts", {})
            for i in ids:
                counts[i] = counts.get(i, 0) + 1

    def encode_texts(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Raw texts as prompts (``predict``): the random draw's demonstrations (nearest: the texts' own)."""
        prepared = [self._text({"text": text}, self.max_chars) for text in texts]
        if self.selection == "nearest" and self.k:
            demos = self._closest([self._text({"text": text}, self.demo_chars) for text in texts])  # as _nearest
        else:
            demos = [self.demonstrations({})] * len(prepared)  # one shared draw (cached)
        return [self._row(text, d) for text, d in zip(prepared, demos)]

    def _collator(self) -> PadCollator:
        return PadCollator(self.tokenizer.pad_token_id, extra_pad_values={"cf_input_ids": self.tokenizer.pad_token_id})
