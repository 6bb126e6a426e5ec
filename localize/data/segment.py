"""Cut raw text into words for NER inference, in the unit the model was trained on.

Training data arrives already split into words (CoNLL tokens, MeCab words for the hironsan corpus,
characters for span-JSON input of scripts without spaces). Raw text at inference has no such
split, so each locale names a segmenter (``segmenter:`` in ``conf/locale/*.yaml``) and this module
turns it into ``(start, end)`` character spans of the *original* text, so entity offsets always
point into what the user sent.

Registry (``SEGMENTERS``); an unavailable segmenter falls back to characters with one warning:

* ``fugashi`` (ja): MeCab with the IPAdic dictionary — the hironsan corpus's own segmentation
  (its words and features are MeCab/IPAdic). Uses ``fugashi`` when installed, else
  ``mecab-python3`` (a project dependency, same engine); the ``ipadic`` package supplies the
  dictionary in both cases. fugashi's usual ``unidic-lite`` dictionary is deliberately *not* used:
  UniDic cuts shorter units than IPAdic ("南アフリカ共和国" etc.), i.e. not the training unit.
* ``jieba`` (zh): jieba words, when installed.
* ``char``: every non-space character is a word (what ``read_span_json(char_level=True)``
  trains on; the fallback for any script without spaces).
* ``whitespace``: runs of non-space characters (space-separated scripts).
"""
from __future__ import annotations

import functools
import logging
import re
import warnings
from typing import Callable

log = logging.getLogger(__name__)

Span = tuple[int, int]


def whitespace_spans(text: str) -> list[Span]:
    """Runs of non-space characters."""
    return [m.span() for m in re.finditer(r"\S+", text)]


def char_spans(text: str) -> list[Span]:
    """Every non-space character on its own."""
    return [m.span() for m in re.finditer(r"\S", text)]


def _locate(text: str, words: list[str]) -> list[Span]:
    """Spans of ``words`` found left to right in ``text`` (segmenters that return surfaces only).

    A word the segmenter rewrote (not found verbatim) is cut as characters up to the next word
    that is found, so no character of the input is ever lost.
    """
    spans, pos = [], 0
    for w in words:
        w = w.strip()
        if not w:
            continue
        k = text.find(w, pos)
        if k < 0:
            continue
        spans.extend(char_spans_between(text, pos, k))
        spans.append((k, k + len(w)))
        pos = k + len(w)
    spans.extend(char_spans_between(text, pos, len(text)))
    return spans


def char_spans_between(text: str, start: int, end: int) -> list[Span]:
    return [(start + s, start + e) for s, e in char_spans(text[start:end])]


@functools.lru_cache(maxsize=None)
def _mecab_ipadic() -> Callable[[str], list[str]] | None:
    try:
        import ipadic
    except ImportError:
        return None
    try:
        import fugashi

        tagger = fugashi.GenericTagger(ipadic.MECAB_ARGS)
        return lambda text: [w.surface for w in tagger(text)]
    except Exception:  # fugashi missing, or built without a usable MeCab
        pass
    try:
        import MeCab

        tagger = MeCab.Tagger(ipadic.MECAB_ARGS + " -Owakati")
        tagger.parse("テスト")
        return lambda text: tagger.parse(text).split()
    except Exception:
        return None


@functools.lru_cache(maxsize=None)
def _jieba() -> Callable[[str], list[str]] | None:
    try:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        return lambda text: list(jieba.cut(text))
    except ImportError:
        return None


def _external(loader: Callable[[], Callable[[str], list[str]] | None], name: str, fix: str):
    def segment(text: str) -> list[Span]:
        cut = loader()
        if cut is None:
            _warn_fallback(name, fix)
            return char_spans(text)
        return _locate(text, cut(text))

    segment.available = lambda: loader() is not None  # type: ignore[attr-defined]
    return segment


@functools.lru_cache(maxsize=None)
def _warn_fallback(name: str, fix: str) -> None:
    warnings.warn(f"segmenter '{name}' is unavailable; cutting text into characters instead ({fix}). "
                  f"Predictions then use a finer unit than the training words.")


SEGMENTERS: dict[str, Callable[[str], list[Span]]] = {
    "fugashi": _external(_mecab_ipadic, "fugashi", "pip install mecab-python3 ipadic (or fugashi ipadic)"),
    "mecab": _external(_mecab_ipadic, "mecab", "pip install mecab-python3 ipadic"),
    "jieba": _external(_jieba, "jieba", "pip install jieba"),
    "char": char_spans,
    "whitespace": whitespace_spans,
}


def segmenter_for(locale: dict | None, name: str | None = None) -> tuple[str, Callable[[str], list[Span]]]:
    """The word segmenter for a locale config: ``name`` if given, else the locale's ``segmenter``,
    else whitespace for space-separated scripts and characters for the others.

    Returns:
        ``(name actually used, function text -> spans)``; the name is ``char`` when the
        locale's segmenter is not installed (recorded so outputs say which unit they used).

    Raises:
        ValueError: an unknown segmenter name (lists the known ones).
    """
    locale = dict(locale or {})
    space_separated = bool(locale.get("space_separated", True))
    name = name or (None if space_separated else locale.get("segmenter")) or ("whitespace" if space_separated else "char")
    if name not in SEGMENTERS:
        raise ValueError(f"unknown segmenter '{name}': choose one of {sorted(SEGMENTERS)} "
                         f"(set segmenter=... or locale.segmenter)")
    fn = SEGMENTERS[name]
    available = getattr(fn, "available", None)
    if available is not None and not available():
        _warn_fallback(name, "install it to segment like the training data")
        return "char", char_spans
    return name, fn
