"""en→xx UI-string translation data: gettext pairs → prompt + target token ids, and .po filling.

Sources, first that applies: ``data.path`` (a .po/.mo file or a folder of them) → the locale's
installed gettext catalogs (``locale.datasets.translation.gettext``) → the locale's hub corpus
(OPUS-100) when the hub is reachable (``translation_readers``). Pairs are split by a hash of the
English source (``sources.split_examples`` grouped by source), so no source string is in two splits.

Decoder-only models see ``prompt + " " + target + EOS`` with the prompt's labels set to -100 (the
loss covers the target and EOS only); generation starts from the same prompt ids, so training and
inference agree on the token boundary. Sequences are left-padded: prompts end at the last
position, which batched generation needs, and every target sits in the last positions of its row,
which lets the module compute logits for those positions only (the 262k-word output layer of
Gemma-3 costs more than its transformer body).

Encoder-decoder models (``encoder_decoder=True``: mT5, opus-mt, NLLB) read the prompt with the
encoder and learn the target as decoder labels (transformers shifts them right); their batches are
right-padded. Models that mark languages with tokens (NLLB, M2M100, mBART-50) get the codes from
``model.translation.lang_codes`` (:func:`language_tokens`): the tokenizer prefixes the source and the
labels with them, and generation forces the target code as the first output token.

The model translates one line at a time: multi-line pairs are dropped from training/evaluation,
and at inference (:func:`fill_po`, ``predict_texts``) a string is split into lines, each line's
surrounding whitespace is kept verbatim (gettext requires matching leading/trailing ``\\n``) and
only its core is translated.
"""
from __future__ import annotations

import logging
import os
import random
import re
from typing import Any, Sequence

from torch.utils.data import DataLoader

from localize.data.collate import PadCollator
from localize.data.datamodule import LocalizeDataModule
from localize.data.errors import DataError
from localize.models.tokens import eos_id, language_token_id, language_tokens, pad_id  # noqa: F401 (re-exported)
from localize.data.gettext_pairs import (
    read_po,
    read_po_header,
    write_po,
)
from localize.data.sources import source_hash
from localize.data.translation_readers import MT

log = logging.getLogger(__name__)

DEFAULT_PROMPT = "Translate the {src_lang} UI string to {tgt_lang}, keep placeholders.\n{src_lang}: {source}\n{tgt_lang}:"
_EDGE_SPACE = re.compile(r"^(\s*)(.*?)(\s*)$", re.S)


def format_prompt(template: str, source: str, src_lang: str, tgt_lang: str) -> str:
    """The prompt for one source string (``{source}``, ``{src_lang}``, ``{tgt_lang}`` filled)."""
    return template.format(source=source, src_lang=src_lang, tgt_lang=tgt_lang)


def encode_pair(tokenizer, prompt: str, target: str | None, max_length: int,
                encoder_decoder: bool = False) -> dict[str, list[int]]:
    """Token ids of ``prompt`` (+ ``" " + target + EOS`` when a target is given).

    Returns:
        ``input_ids``/``attention_mask``/``labels`` (prompt labels -100) of the full sequence and
        ``prompt_ids``/``prompt_mask`` (the prompt alone, for generation). An over-long sequence
        loses the end of its target (the prompt is kept whole: generation needs it). With
        ``encoder_decoder`` the inputs are the prompt and the labels the target alone.
    """
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    if encoder_decoder:
        prompt_ids = prompt_ids[:max_length]
    out = {"prompt_ids": prompt_ids, "prompt_mask": [1] * len(prompt_ids)}
    if target is None:
        return out
    if encoder_decoder:
        labels = tokenizer(text_target=target, add_special_tokens=True)["input_ids"]
        if labels[-1] != eos_id(tokenizer):
            labels.append(eos_id(tokenizer))  # generation must learn where to stop
        return {**out, "input_ids": prompt_ids, "attention_mask": out["prompt_mask"], "labels": labels[:max_length]}
    target_ids = tokenizer(" " + target, add_special_tokens=False)["input_ids"] + [eos_id(tokenizer)]
    ids = (prompt_ids + target_ids)[:max(max_length, len(prompt_ids) + 1)]
    labels = ([-100] * len(prompt_ids) + target_ids)[: len(ids)]
    return {**out, "input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def translation_collator(tokenizer, encoder_decoder: bool = False) -> PadCollator:
    """Left padding for decoder-only models (prompts end at the last position for generation);
    right padding for encoder-decoders (labels are shifted right into decoder inputs)."""
    pad = pad_id(tokenizer)
    return PadCollator(pad, padding_side="right" if encoder_decoder else "left",
                       extra_pad_values={"prompt_ids": pad, "prompt_mask": 0})


def split_edges(text: str) -> tuple[str, str, str]:
    """``(leading whitespace, core, trailing whitespace)`` of one line."""
    m = _EDGE_SPACE.match(text)
    return m.group(1), m.group(2), m.group(3)


def line_cores(texts: Sequence[str]) -> list[str]:
    """Distinct non-empty line cores of ``texts``, in first-seen order (what must be translated)."""
    seen: dict[str, None] = {}
    for text in texts:
        for line in text.split("\n"):
            core = split_edges(line)[1]
            if core:
                seen.setdefault(core, None)
    return list(seen)


def reassemble(text: str, translated: dict[str, str]) -> str:
    """``text`` with every line core replaced by its translation; whitespace and newlines kept."""
    lines = []
    for line in text.split("\n"):
        lead, core, trail = split_edges(line)
        lines.append(lead + translated.get(core, core) + trail if core else line)
    return "\n".join(lines)


class TranslationDataModule(LocalizeDataModule):
    """en→xx pairs for a decoder-only (default) or encoder-decoder model.

    Args:
        gettext: locale directory of the installed catalogs (``/usr/share/locale/<gettext>``).
        hub: hub parallel corpus (``Helsinki-NLP/opus-100``) used when the hub is reachable.
        hub_config: its configuration (``en-ja``); the target column is the part after ``-``.
        prompt: template with ``{src_lang}``, ``{tgt_lang}`` and ``{source}``.
        src_lang: source language name in the prompt.
        tgt_lang: target language name in the prompt (default: the locale's ``name``).
        split_sizes: (train, dev, test) fractions or counts of distinct sources.
        min_words: drop system-catalog sources with fewer words (one-word labels are ambiguous).
        max_chars: drop pairs whose source or target is longer (long help texts cost generation time).
        drop_identical: drop pairs whose target equals the source (strings left in English).
        exclude_catalogs: ``fnmatch`` patterns of system catalogs to leave out.
        encoder_decoder: the model is an encoder-decoder (``model.encoder_decoder``).
        lang_codes: locale code → the model's language token (``model.translation.lang_codes``;
            NLLB/M2M100/mBART-50), see :func:`language_tokens`.
        reverse: translate xx→en (``task.reverse``; e.g. back-translation's first leg): the splits are the
            en→xx run's (cut by the English side), then each pair, the prompt's language names and the
            language tokens swap sides.
        **kwargs: see ``LocalizeDataModule``.
    """

    task_name = "translation"

    def __init__(
        self,
        *args: Any,
        gettext: str | None = None,
        hub: str | None = None,
        hub_config: str | None = None,
        prompt: str = DEFAULT_PROMPT,
        src_lang: str = "English",
        tgt_lang: str | None = None,
        split_sizes: Sequence[float | int | None] = (0.8, 0.1, 0.1),
        min_words: int = 3,
        max_chars: int = 120,
        drop_identical: bool = True,
        exclude_catalogs: Sequence[str] = (),
        encoder_decoder: bool = False,
        lang_codes: dict[str, str] | None = None,
        demonstrations: int = 0,
        demo_selection: str = "random",
        reverse: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if demo_selection != "random":
            raise ValueError(f"adapter.selection={demo_selection!r}: translation prompts show one random draw of "
                             "example pairs. Fix: adapter.selection=random")
        if demonstrations < 0:
            raise ValueError(f"adapter.k={demonstrations} must be >= 0 (0: zero-shot). Fix: adapter.k=4")
        # In-context prompting (adapter=icl): k train pairs, one seeded draw, shown before every prompt.
        self.demonstrations = demonstrations
        self.demo_prefix: str | None = None  # set before tokenising: part of the tokenised-cache key
        self.encoder_decoder = encoder_decoder
        # Part of the tokenised-cache key (a public attribute): another target code, other labels.
        self.reverse = bool(reverse)
        self.tokenizer_kwargs = language_tokens(lang_codes, self.locale.get("code"), reverse=self.reverse)
        self.gettext, self.hub, self.hub_config = gettext, hub, hub_config
        self.prompt, self.src_lang = prompt, src_lang
        self.tgt_lang = tgt_lang or self.locale.get("name")
        if not self.tgt_lang:
            raise ValueError("no target language for the prompt: add +locale=xx or set task.tgt_lang=<language name>")
        if reverse:
            self.src_lang, self.tgt_lang = self.tgt_lang, self.src_lang
        if "{source}" not in prompt:
            raise ValueError(f"task.prompt must contain '{{source}}', got {prompt!r}")
        self.split_sizes = tuple(split_sizes)
        self.min_words, self.max_chars, self.drop_identical = min_words, max_chars, drop_identical
        self.exclude_catalogs = list(exclude_catalogs)

    def _load_splits(self) -> dict[str, list[dict]]:
        info: dict[str, Any] = {}
        caps = {"train": self.max_train_examples, "validation": self.max_eval_examples, "test": self.max_eval_examples}
        loaded = MT.load(path=self.path, offline="gettext" if self.gettext else None, hub=self.hub,
                         hub_config=self.hub_config, info=info, no_data=self.no_data_error,
                         options={"lang": self.gettext, "min_words": self.min_words,
                                  "drop_identical": self.drop_identical, "exclude": self.exclude_catalogs},
                         # Read 2x the caps: filtering (length, one line) drops some rows.
                         hub_limits={k: 2 * v if v else None for k, v in caps.items()})
        source = loaded.source
        if loaded.kind == "hub":
            self.reject_cv(source)
            splits = {k: self._filter(v, info) for k, v in loaded.data.items()}
            # Corpus splits can share sentences: a source seen in test (dev) is dropped from dev and train.
            test = {p["source"] for p in splits["test"]}
            splits["validation"] = [p for p in splits["validation"] if p["source"] not in test]
            held_out = test | {p["source"] for p in splits["validation"]}
            splits["train"] = [p for p in splits["train"] if p["source"] not in held_out]
        else:
            train, dev, test = self.split_sizes
            # Dev and test are cut first, so they stay put when only the train size changes.
            by_name = self.split_pool(self._filter(loaded.data, info), {"validation": dev, "test": test, "train": train},
                                      group=lambda p: p["source"])
            # Hash order inside each split: the max_*_examples caps then take a random, nested subset.
            splits = {name: sorted(by_name[name], key=lambda p: (source_hash(p["source"], self.seed), p["id"]))
                      for name in ("train", "validation", "test")}
        if self.reverse:  # the same pairs as the en→xx run's, each turned around
            splits = {k: [{**p, "source": p["target"], "target": p["source"]} for p in v] for k, v in splits.items()}
        self.data_info.update(source=source, src_lang=self.src_lang, tgt_lang=self.tgt_lang, prompt=self.prompt,
                              direction="xx→en" if self.reverse else "en→xx",
                              split="by hash of the English source (no source in two splits)",
                              filters={"single_line": True, "max_chars": self.max_chars,
                                       "min_words": self.min_words if not self.path else None,
                                       "drop_identical": self.drop_identical},
                              references="verbatim (no normalisation), surrounding whitespace stripped", **info)
        return splits

    def _filter(self, pairs: list[dict], info: dict[str, Any]) -> list[dict]:
        """One-line pairs within ``max_chars``, trimmed, in a fixed schema (Arrow needs one)."""
        out = []
        dropped = info.setdefault("dropped", {})
        for p in pairs:
            src, tgt = p["source"].strip(), p["target"].strip()
            reason = ("empty" if not src or not tgt else "multi_line" if "\n" in src or "\n" in tgt
                      else "longer_than_max_chars" if len(src) > self.max_chars or len(tgt) > self.max_chars
                      else "identical" if self.drop_identical and src == tgt else None)
            if reason:
                dropped[reason] = dropped.get(reason, 0) + 1
                continue
            out.append({"id": p["id"], "source": src, "target": tgt, "context": p.get("context") or "",
                        "catalog": p.get("catalog") or ""})
        info["n_pairs_read"] = info.get("n_pairs_read", 0) + len(pairs)
        info["n_pairs_kept"] = info.get("n_pairs_kept", 0) + len(out)
        return out

    def _prefix(self) -> str:
        """The demonstrations (``demonstrations`` train pairs, prompt + translation each), recorded."""
        if not self.demonstrations:
            return ""
        train = self.splits["train"]
        shown = random.Random(self.seed).sample(train, min(self.demonstrations, len(train)))
        self.data_info["in_context"] = {"k": len(shown), "selection": "random", "demonstrations": [p["id"] for p in shown]}
        return "".join(format_prompt(self.prompt, p["source"], self.src_lang, self.tgt_lang) + " " + p["target"]
                       + "\n\n" for p in shown)

    def _tokenise(self, name: str, examples: list[dict]):
        if self.demo_prefix is None:
            self.demo_prefix = self._prefix()
        return super()._tokenise(name, examples)

    def _prompt(self, source: str) -> str:
        if self.demo_prefix is None:
            self.demo_prefix = self._prefix()
        prompt = self.demo_prefix + format_prompt(self.prompt, source, self.src_lang, self.tgt_lang)
        if self.demonstrations:  # a cut prompt would lose the string to translate (encode_pair keeps the start)
            n = len(self.tokenizer(prompt)["input_ids"])
            if n >= self.max_length:
                raise DataError(f"a prompt with adapter.k={self.demonstrations} example pairs has {n} tokens, "
                                f"data.max_length={self.max_length} leaves no room for the translation. Fix: "
                                f"data.max_length={n + 64} or adapter.k={self.demonstrations // 2}")
        return prompt

    def _encode(self, example: dict[str, Any]) -> dict[str, Any]:
        prompt = self._prompt(example["source"])
        enc = encode_pair(self.tokenizer, prompt, example["target"], self.max_length, self.encoder_decoder)
        return {**enc, "source": example["source"], "reference": example["target"]}

    def encode_texts(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Prompts for raw English strings: one row per distinct line core (see ``line_cores``);
        whitespace and line breaks are put back by ``decode_outputs``."""
        return [{**encode_pair(self.tokenizer, self._prompt(core), None, self.max_length, self.encoder_decoder),
                 "source": core} for core in line_cores(texts)]

    def decode_outputs(self, texts: Sequence[str], rows: Sequence[dict[str, Any]],
                       outputs: Sequence[str]) -> list[dict[str, str]]:
        """``[{"source": text, "translation": ...}]``, each line core replaced by its translation."""
        translated = {row["source"]: out for row, out in zip(rows, outputs)}
        return [{"source": t, "translation": reassemble(t, translated)} for t in texts]

    def _eval_loader(self, split: str) -> DataLoader:
        # Generation runs until the longest row of a batch ends: batches of similar prompt length
        # (a proxy for output length) waste fewer decoding steps. Scores do not depend on order.
        ds = self.encoded[split]
        lengths = [len(ids) for ids in ds["prompt_ids"]]
        order = sorted(range(len(ds)), key=lambda i: (lengths[i], i))
        return DataLoader(ds, batch_size=self.eval_batch_size, sampler=order, collate_fn=self._collator(),
                          num_workers=self.num_workers)

    def _collator(self) -> PadCollator:
        return translation_collator(self.tokenizer, self.encoder_decoder)

    def no_data_error(self) -> DataError:
        err = super().no_data_error()
        if self.gettext:
            err = DataError(f"{err} (no catalogs under /usr/share/locale/{self.gettext}/LC_MESSAGES)")
        return err



# ---- filling a catalog --------------------------------------------------------------------
def fill_po(in_path: str | os.PathLike, out_path: str | os.PathLike, module, mark_fuzzy: bool = True,
            batch_size: int | None = None) -> dict[str, Any]:
    """Translate every untranslated or fuzzy entry of a .po file and write the filled catalog.

    Translated entries are written back unchanged; header fields ``Language`` and
    ``Plural-Forms`` are kept. Plural entries get the singular translation in ``msgstr[0]`` and
    the plural one in the other forms.

    Args:
        in_path: The .po/.pot file.
        out_path: Where the filled .po goes.
        module: Anything with ``predict_texts(texts, batch_size=...) -> [{"source", "translation"}]``
            (``TranslationLitModule``).
        mark_fuzzy: Flag machine translations ``fuzzy`` (gettext's "needs review"; ``msgfmt``
            leaves them out of the compiled catalog until a translator clears the flag).
        batch_size: Generation batch size (None: the translator's default).

    Returns:
        Counts: ``filled``, ``empty`` (the model produced nothing: entry left as it was),
        ``kept`` (already translated) and ``placeholders_kept`` (filled entries whose
        translation keeps every placeholder of the source).
    """
    from localize.tracking.mt_metrics import placeholders_preserved

    entries = read_po(in_path, keep_untranslated=True, keep_fuzzy=True)
    header = read_po_header(in_path)
    todo = [e for e in entries if not e["target"] or "fuzzy" in e["flags"]]
    sources = [s for e in todo for s in ([e["source"]] + ([e["plural"]] if e.get("plural") else []))]
    translated = {r["source"]: r["translation"] for r in module.predict_texts(sources, batch_size=batch_size)} \
        if sources else {}
    m = re.search(r"nplurals\s*=\s*(\d+)", header.get("plural-forms", ""))
    nplurals = int(m.group(1)) if m else None
    ok = filled = 0
    for e in todo:
        single = translated[e["source"]]
        if not single.strip():  # the model gave nothing: leave the entry as it was
            continue
        if e.get("plural") is not None:
            n = nplurals or max(len(e["targets"]), 2)
            e["targets"] = [single] + [translated[e["plural"]]] * (n - 1)
        e["target"] = single
        flags = [f for f in e["flags"] if f != "fuzzy"]
        e["flags"] = (["fuzzy"] if mark_fuzzy else []) + flags
        ok += placeholders_preserved(e["source"], single)
        filled += 1
    write_po(entries, out_path, lang=header.get("language"), plural_forms=header.get("plural-forms"))
    return {"filled": filled, "empty": len(todo) - filled, "kept": len(entries) - len(todo), "placeholders_kept": ok}

