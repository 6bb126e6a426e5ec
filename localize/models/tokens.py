"""Tokenizer facts a model needs besides its weights: special ids and language tokens.

Shared by the translation datamodule (encoding) and the translation module (generation), so
they live with the models; ``localize.data`` imports them, never the other way round.
"""
from __future__ import annotations


def language_tokens(lang_codes: dict[str, str] | None, target_lang: str | None,
                    source_lang: str = "en", reverse: bool = False) -> dict[str, str]:
    """Tokenizer kwargs (``src_lang``/``tgt_lang``) of a model that marks languages with tokens.

    Args:
        lang_codes: locale code → the model's language token (``model.translation.lang_codes``,
            e.g. NLLB's FLORES-200 codes ``{"en": "eng_Latn", "ja": "jpn_Jpan"}``); None/empty for
            models without language tokens (→ ``{}``).
        target_lang: the locale's code (``locale.code``).
        source_lang: the other side's code (English by default).
        reverse: the direction is turned around (``task.reverse``): ``target_lang`` is the source.

    Raises:
        ValueError: the map has no code for the source or the target locale.
    """
    if not lang_codes:
        return {}
    if reverse:
        source_lang, target_lang = target_lang, source_lang
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
