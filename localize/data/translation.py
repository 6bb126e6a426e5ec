"""en→xx UI-string translation data: gettext pairs → prompt + target token ids, and .po filling.

Sources, first that applies: ``data.path`` (a .po/.mo file or a folder of them) → the locale's
installed gettext catalogs (``locale.datasets.translation.gettext``) → the locale's hub corpus
(OPUS-100) when the hub is reachable. Pairs are split by a hash of the English source
(``split_by_source``), so no source string is in two splits.

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
import re
from pathlib import Path
from typing import Any, Sequence

from torch.utils.data import DataLoader

from localize.data.collate import PadCollator
from localize.data.datamodule import LocalizeDataModule, hub_reachable
from localize.data.errors import DataError
from localize.data.gettext_pairs import (
    _parse_header,
    _po_entries,
    read_mo,
    read_po,
    source_hash,
    split_by_source,
    system_catalog_pairs,
    write_po,
)

log = logging.getLogger(__name__)

DEFAULT_PROMPT = "Translate the {src_lang} UI string to {tgt_lang}, keep placeholders.\n{src_lang}: {source}\n{tgt_lang}:"
SPLIT_NAMES = {"train": "train", "validation": "dev", "test": "test"}  # ours -> split_by_source's
_EDGE_SPACE = re.compile(r"^(\s*)(.*?)(\s*)$", re.S)


def format_prompt(template: str, source: str, src_lang: str, tgt_lang: str) -> str:
    """The prompt for one source string (``{source}``, ``{src_lang}``, ``{tgt_lang}`` filled)."""
    return template.format(source=source, src_lang=src_lang, tgt_lang=tgt_lang)


def language_tokens(lang_codes: dict[str, str] | None, target_lang: str | None,
                    source_lang: str = "en") -> dict[str, str]:
    """Tokenizer kwargs (``src_lang``/``tgt_lang``) of a model that marks languages with tokens.

    Args:
        lang_codes: locale code → the model's language token (``model.translation.lang_codes``,
            e.g. NLLB's FLORES-200 codes ``{"en": "eng_Latn", "ja": "jpn_Jpan"}``); None/empty for
            models without language tokens (→ ``{}``).
        target_lang: the locale's code (``locale.code``).

    Raises:
        ValueError: the map has no code for the source or the target locale.
    """
    if not lang_codes:
        return {}
    for code in (source_lang, target_lang):
        if code not in lang_codes:
            raise ValueError(f"model.translation.lang_codes has no language token for locale '{code}' "
                             f"(known: {sorted(lang_codes)}): add +model.translation.lang_codes.{code}=<token> "
                             f"(NLLB: a FLORES-200 code such as jpn_Jpan) or pick another model")
    return {"src_lang": lang_codes[source_lang], "tgt_lang": lang_codes[target_lang]}


def language_token_id(tokenizer, token: str) -> int:
    """Id of a language token, refusing codes the tokenizer does not know (they map to <unk>)."""
    idx = tokenizer.convert_tokens_to_ids(token)
    if idx is None or idx == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no token '{token}': fix "
                         f"model.translation.lang_codes (NLLB uses FLORES-200 codes such as jpn_Jpan)")
    return idx


def eos_id(tokenizer) -> int:
    """End-of-sequence id; encoder tokenizers without EOS (BERT) use SEP."""
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if eos is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has neither an EOS nor a SEP token: "
                         f"choose another model.tokenizer")
    return eos


def pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id(tokenizer)


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
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.encoder_decoder = encoder_decoder
        # Part of the tokenised-cache key (a public attribute): another target code, other labels.
        self.tokenizer_kwargs = language_tokens(lang_codes, self.locale.get("code"))
        self.gettext, self.hub, self.hub_config = gettext, hub, hub_config
        self.prompt, self.src_lang = prompt, src_lang
        self.tgt_lang = tgt_lang or self.locale.get("name")
        if not self.tgt_lang:
            raise ValueError("no target language for the prompt: add +locale=xx or set task.tgt_lang=<language name>")
        if "{source}" not in prompt:
            raise ValueError(f"task.prompt must contain '{{source}}', got {prompt!r}")
        self.split_sizes = tuple(split_sizes)
        self.min_words, self.max_chars, self.drop_identical = min_words, max_chars, drop_identical
        self.exclude_catalogs = list(exclude_catalogs)

    def _load_splits(self) -> dict[str, list[dict]]:
        info: dict[str, Any] = {}
        if self.path:
            pairs, source = _read_path(self.path, info), self.path
        elif self.gettext and _has_catalogs(self.gettext):
            pairs, catalogs = system_catalog_pairs(self.gettext, min_words=self.min_words,
                                                   drop_identical=self.drop_identical, exclude=self.exclude_catalogs)
            source = f"gettext:/usr/share/locale/{self.gettext}/LC_MESSAGES"
            info["catalogs"] = [{k: c[k] for k in ("catalog", "package", "version", "licence", "n_selected")}
                                for c in catalogs if c["n_selected"]]
            used = [c for c in catalogs if c["n_selected"]]
            info["licences"] = sorted({c["licence"] for c in used if c["licence"]})
            info["catalogs_without_licence"] = sorted(c["catalog"] for c in used if not c["licence"])
        elif self.hub and hub_reachable():
            pairs, source = None, f"hub:{self.hub}/{self.hub_config}"
        else:
            raise self.no_data_error()
        if pairs is None:
            splits = _load_hub(self.hub, self.hub_config, self.max_train_examples, self.max_eval_examples)
            splits = {k: self._filter(v, info) for k, v in splits.items()}
            # Corpus splits can share sentences: a source seen in test (dev) is dropped from dev and train.
            test = {p["source"] for p in splits["test"]}
            splits["validation"] = [p for p in splits["validation"] if p["source"] not in test]
            held_out = test | {p["source"] for p in splits["validation"]}
            splits["train"] = [p for p in splits["train"] if p["source"] not in held_out]
        else:
            kept = self._filter(pairs, info)
            by_name = split_by_source(kept, self.split_sizes, seed=self.seed)
            # Hash order inside each split: the max_*_examples caps then take a random, nested subset.
            splits = {ours: sorted(by_name[theirs], key=lambda p: (source_hash(p["source"], self.seed), p["id"]))
                      for ours, theirs in SPLIT_NAMES.items()}
        self.data_info.update(source=source, src_lang=self.src_lang, tgt_lang=self.tgt_lang, prompt=self.prompt,
                              split="by hash of the English source (no source in two splits)",
                              filters={"single_line": True, "max_chars": self.max_chars,
                                       "min_words": self.min_words if not self.path else None,
                                       "drop_identical": self.drop_identical},
                              references="verbatim (no normalisation), surrounding whitespace stripped", **info)
        return splits

    def _filter(self, pairs: list[dict], info: dict[str, Any]) -> list[dict]:
        """One-line pairs within ``max_chars``, trimmed, in a fixed schema (Arrow needs one)."""
        out = []
        for p in pairs:
            src, tgt = p["source"].strip(), p["target"].strip()
            if not src or not tgt or "\n" in src or "\n" in tgt:
                continue
            if len(src) > self.max_chars or len(tgt) > self.max_chars:
                continue
            if self.drop_identical and src == tgt:
                continue
            out.append({"id": p["id"], "source": src, "target": tgt, "context": p.get("context") or "",
                        "catalog": p.get("catalog") or ""})
        info["n_pairs_read"] = info.get("n_pairs_read", 0) + len(pairs)
        info["n_pairs_kept"] = info.get("n_pairs_kept", 0) + len(out)
        return out

    def _encode(self, example: dict[str, Any]) -> dict[str, Any]:
        prompt = format_prompt(self.prompt, example["source"], self.src_lang, self.tgt_lang)
        enc = encode_pair(self.tokenizer, prompt, example["target"], self.max_length, self.encoder_decoder)
        return {**enc, "source": example["source"], "reference": example["target"]}

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


def _has_catalogs(lang: str, root: str = "/usr/share/locale") -> bool:
    return any(Path(root, lang, "LC_MESSAGES").glob("*.mo"))


def _read_path(path: str, info: dict[str, Any]) -> list[dict]:
    """Pairs from one .po/.mo file or every .po/.mo under a folder."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"data.path '{path}' does not exist: point data.path at a .po/.mo file or a folder of them")
    files = sorted(f for f in (p.rglob("*") if p.is_dir() else [p]) if f.suffix in (".po", ".mo"))
    if not files:
        raise DataError(f"no .po/.mo file at '{path}': data.path must be a gettext catalog or a folder of them")
    pairs = []
    for f in files:
        pairs += read_po(f) if f.suffix == ".po" else read_mo(f)
    info["files"] = [str(f) for f in files]
    return pairs


def _load_hub(hub_id: str, config: str, max_train: int | None, max_eval: int | None) -> dict[str, list[dict]]:
    """An OPUS-style hub corpus with a ``translation: {src: ..., tgt: ...}`` column."""
    import datasets

    src, tgt = config.split("-", 1)
    out = {}
    for ours, theirs in (("train", "train"), ("validation", "validation"), ("test", "test")):
        cap = max_train if ours == "train" else max_eval
        # Read 2x the cap: filtering (length, one line) drops some rows.
        split = f"{theirs}[:{2 * cap}]" if cap else theirs
        try:
            ds = datasets.load_dataset(hub_id, config, split=split)
        except Exception as e:  # network, auth or missing config: one message with the way out
            raise DataError(f"cannot load hub dataset {hub_id}/{config}: {e}. Offline, use data.path=...") from e
        out[ours] = [{"id": f"{hub_id}:{ours}-{i}", "source": r["translation"][src], "target": r["translation"][tgt],
                      "context": None, "catalog": config} for i, r in enumerate(ds)]
    return out


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
    header = _po_header(in_path)
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


def _po_header(path: str | os.PathLike) -> dict[str, str]:
    """The header fields of a .po file (keys lower-cased); {} without a header."""
    text = Path(path).read_text(encoding="utf-8", errors="replace").lstrip("\ufeff")
    for e in _po_entries(text, Path(path)):
        if e["msgid"] == "" and e["context"] is None and not e["obsolete"]:
            return _parse_header(e["msgstr"].get(0, ""))
    return {}
