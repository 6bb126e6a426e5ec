"""Metrics for en→xx UI-string translation: BLEU/chrF (sacrebleu), exact match, placeholders.

Placeholders are the parts of a UI string a translation must carry over unchanged (or, for
accelerators, in some form): printf/Python/brace format specs, ``$VAR``, markup tags and
entities. :func:`placeholders` returns them as a ``Counter`` so repeated specs count, and
:func:`placeholder_preservation` checks multiset containment source ⊆ output.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence

__all__ = [
    "placeholders", "placeholders_preserved", "placeholder_preservation", "placeholder_preservation_items",
    "bleu_tokenizer", "translation_scores", "MARKUP_TAGS",
]

# HTML + Pango/GTK + Qt rich-text tag names. Restricting tags to known names keeps CLI
# syntax like "Usage: cp <source> <dest>" (translated on purpose by many teams) out.
MARKUP_TAGS = frozenset(
    "a abbr b big blockquote br center code dd del div dl dt em font h1 h2 h3 h4 h5 h6 hr html i img "
    "ins kbd li link nobr ol p pre q qt s samp small span strike strong sub sup table tbody td th "
    "thead tr tt u ul var markup".split())

_PRINTF = (r"%(?:\d+\$)?(?:\([^()\s]*\))?[-+#0']*(?:\d+|\*(?:\d+\$)?)?(?:\.(?:\d+|\*(?:\d+\$)?))?"
           r"(?:hh|ll|[hlLqjzZt]|I64|I32|I)?[diouxXeEfFgGaAcCsSpnm]")
_TOKEN_RE = re.compile(
    r"(?P<pct>%%)"                                   # escaped percent: not a placeholder
    r"|(?P<printf>" + _PRINTF + r"|%<\w+>)"          # printf / Python %-format / %<PRIu64>
    r"|(?P<qt>%\d+)"                                 # Qt QString::arg
    r"|(?P<lbrace>\{\{)|(?P<rbrace>\}\})"            # escaped braces
    r"|(?P<brace>\{(?:\d+|[A-Za-z_]\w*(?:\.\w+|\[\w+\])*)?(?:![rsa])?(?::[^{}]*)?\})"
    r"|(?P<entity>&(?:[A-Za-z][A-Za-z0-9]*|#\d+|#[xX][0-9a-fA-F]+);)"
    r"|(?P<amp2>&&)"                                 # escaped ampersand (Qt/Windows)
    r"|(?P<tag></?(?P<tagname>[A-Za-z][\w:.-]*)(?:\s[^<>]*?)?\s*(?P<selfclose>/)?>)"
    r"|(?P<var>\$\{[A-Za-z_]\w*\}|\$[A-Za-z_]\w*)",
    re.S)
_AMP_ACCEL_RE = re.compile(r"&(?=[^\W_])")
_US_ACCEL_RE = re.compile(r"_(?=[^\W_])")


def placeholders(text: str, accelerators: str | None = "&", tags: str = "known") -> Counter:
    """Placeholders / format specs in ``text`` as a multiset.

    Recognised (key in the Counter):

    * printf and Python %-format specs, whole: ``%s``, ``%d``, ``%5.2f``, ``%'d``, ``%lu``,
      ``%1$s``, ``%(name)s``, ``%<PRIu64>``; ``%%`` is an escaped percent and ignored, and the
      space flag is not accepted (so "50% done" is no ``% d``);
    * Qt ``%1``, ``%2`` …;
    * brace formats ``{}``, ``{0}``, ``{name}``, ``{0:.2f}``, ``{name!r}``; ``{{``/``}}`` ignored;
    * ``$VAR`` and ``${VAR}``;
    * markup tags, normalised to ``<b>``, ``</b>``, ``<br/>``, ``<a>`` (attributes dropped, so
      a localised ``href`` still counts); with ``tags="known"`` only HTML/Pango/Qt tag names
      (:data:`MARKUP_TAGS`), with ``"any"`` every ``<name ...>``, with ``"none"`` no tags;
    * entities ``&amp;``, ``&lt;``, ``&#160;``, ``&#x2014;``, whole;
    * keyboard accelerators as the bare marker (key ``"&"`` or ``"_"``): the letter is
      locale-specific ("&Open" → "開く(&O)", "&Öffnen"), so only the presence of an
      accelerator is compared. ``accelerators="&"`` (Qt/KDE/Windows, default; ``&&`` is an
      escaped ampersand; entities are not accelerators), ``"_"`` (GTK: word-initial ``_File``
      and mid-word in a capitalised word ``E_xit``; identifiers such as ``LC_ALL`` or
      ``snake_case`` are not counted), ``"&_"`` both, ``None`` neither.

    Args:
        text: The string.
        accelerators: Which accelerator markers to count (see above).
        tags: ``"known"``, ``"any"`` or ``"none"``.
    """
    if tags not in ("known", "any", "none"):
        raise ValueError(f"tags must be 'known', 'any' or 'none', got {tags!r}")
    out: Counter = Counter()
    masked = []  # spans consumed by tokens, excluded from the accelerator search
    for m in _TOKEN_RE.finditer(text):
        kind = "tag" if m.group("tag") is not None else m.lastgroup
        if kind in ("pct", "lbrace", "rbrace", "amp2"):
            masked.append(m.span())
            continue
        if kind == "tag":
            name = m.group("tagname")
            if tags == "none" or (tags == "known" and name.lower() not in MARKUP_TAGS):
                continue
            closing = m.group("tag").startswith("</")
            out["</" + name + ">" if closing else "<" + name + ("/>" if m.group("selfclose") else ">")] += 1
        else:
            out[m.group(kind)] += 1
        masked.append(m.span())
    if accelerators:
        def free(pos: int) -> bool:
            return not any(a <= pos < b for a, b in masked)
        if "&" in accelerators:
            out["&"] += sum(1 for m in _AMP_ACCEL_RE.finditer(text) if free(m.start()))
        if "_" in accelerators:
            for m in _US_ACCEL_RE.finditer(text):
                i = m.start()
                word = re.search(r"\w*$", text[:i]).group() + re.match(r"\w*", text[i:]).group()
                gtk_like = word.startswith("_") or (word[:1].isupper() and not word.isupper())
                if free(i) and word.count("_") == 1 and gtk_like:
                    out["_"] += 1
        out = +out  # drop zero counts
    return out


def placeholders_preserved(source: str, output: str, **kw) -> bool:
    """True iff every placeholder of ``source`` occurs in ``output`` at least as often."""
    need = placeholders(source, **kw)
    have = placeholders(output, **kw)
    return all(have[k] >= n for k, n in need.items())


def placeholder_preservation_items(sources: Sequence[str], outputs: Sequence[str], **kw) -> list[bool]:
    """Per item: :func:`placeholders_preserved` (True for sources without placeholders)."""
    if len(sources) != len(outputs):
        raise ValueError(f"{len(sources)} sources but {len(outputs)} outputs")
    return [placeholders_preserved(s, o, **kw) for s, o in zip(sources, outputs)]


def placeholder_preservation(sources: Sequence[str], outputs: Sequence[str], only_with: bool = False,
                             **kw) -> float:
    """Share of items whose output keeps all source placeholders (multiset containment).

    Args:
        only_with: Compute the share over items whose source has ≥ 1 placeholder only
            (``nan`` if there are none); by default items without placeholders count as kept.
        **kw: Passed to :func:`placeholders` (``accelerators``, ``tags``).
    """
    items = placeholder_preservation_items(sources, outputs, **kw)
    if only_with:
        items = [ok for s, ok in zip(sources, items) if placeholders(s, **kw)]
    return sum(items) / len(items) if items else float("nan")


# ----------------------------------------------------------------------------- BLEU / chrF
@functools.lru_cache(maxsize=None)
def _mecab_ok() -> bool:
    try:
        from sacrebleu.tokenizers.tokenizer_ja_mecab import TokenizerJaMecab

        TokenizerJaMecab()("テスト")
        return True
    except Exception:  # ImportError, or MeCab without a dictionary
        return False


# Scripts written without spaces between words: 13a would make whole phrases one token.
_CHAR_LANGS = {"th", "lo", "km", "my", "bo", "dz"}


def bleu_tokenizer(target_lang: str) -> str:
    """The sacrebleu tokenizer for a target language code (``ja``, ``zh_CN``, ``pt-BR`` …).

    ``ja`` → ``ja-mecab`` when ``mecab-python3`` + ``ipadic`` work, else ``char``; ``zh`` →
    ``zh``; Thai/Lao/Khmer/Burmese/Tibetan/Dzongkha → ``char``; everything else → ``13a``.
    """
    lang = re.split(r"[-_@.]", target_lang.strip().lower())[0]
    if lang == "ja":
        return "ja-mecab" if _mecab_ok() else "char"
    if lang == "zh":
        return "zh"
    if lang in _CHAR_LANGS:
        return "char"
    return "13a"


def translation_scores(sources: Sequence[str], hyps: Sequence[str], refs: Sequence[str],
                       target_lang: str, **placeholder_kw) -> dict:
    """Corpus BLEU, chrF, exact match and placeholder preservation of ``hyps`` against ``refs``.

    Args:
        sources: English sources (for the placeholder check).
        hyps: System outputs.
        refs: One reference per item.
        target_lang: Target language code; picks the BLEU tokenizer (:func:`bleu_tokenizer`).
        **placeholder_kw: Passed to :func:`placeholders`.

    Returns:
        ``bleu`` and ``chrf`` (0–100; chrF is sacrebleu's default: char 6-grams, β=2,
        word_order=0), ``exact_match`` (share of ``hyp.strip() == ref.strip()``),
        ``placeholder_preservation`` (all items), ``placeholder_preservation_with`` (items
        whose source has placeholders; ``nan`` if none), ``n_with_placeholders``, ``n``,
        ``bleu_tokenize`` and the sacrebleu signatures ``bleu_signature``/``chrf_signature``.
        Note: BLEU of a corpus without any matching 4-gram is 0 even for near-perfect
        output; use chrF for very short strings.
    """
    from sacrebleu.metrics import BLEU, CHRF

    n = len(hyps)
    if not (len(sources) == n == len(refs)):
        raise ValueError(f"lengths differ: {len(sources)} sources, {n} hyps, {len(refs)} refs")
    tok = bleu_tokenizer(target_lang)
    hyps = [h if isinstance(h, str) else "" for h in hyps]
    bleu = BLEU(tokenize=tok)
    chrf = CHRF()
    if n:
        b = bleu.corpus_score(list(hyps), [list(refs)]).score
        c = chrf.corpus_score(list(hyps), [list(refs)]).score
    else:
        b = c = float("nan")
    items = placeholder_preservation_items(sources, hyps, **placeholder_kw)
    with_ph = [ok for s, ok in zip(sources, items) if placeholders(s, **placeholder_kw)]
    return {
        "bleu": b, "chrf": c,
        "exact_match": sum(h.strip() == r.strip() for h, r in zip(hyps, refs)) / n if n else float("nan"),
        "placeholder_preservation": sum(items) / n if n else float("nan"),
        "placeholder_preservation_with": sum(with_ph) / len(with_ph) if with_ph else float("nan"),
        "n_with_placeholders": len(with_ph), "n": n, "bleu_tokenize": tok,
        "bleu_signature": str(bleu.get_signature()) if n else None,
        "chrf_signature": str(chrf.get_signature()) if n else None,
    }
