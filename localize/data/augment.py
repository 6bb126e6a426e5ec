"""Training-split augmentation: ``data.augment=[mention_swap,typos] data.augment_factor=1``.

Each training example gets ``augment_factor`` new copies; a copy applies every listed operation in
order, each drawing from the copy's own seeded generator (``data.seed``, the example's id, the copy).
Only the training split is augmented — dev and test never see an augmented text — and a copy that the
locale's normalisation (NFKC) folds back to its original is dropped, so what is counted really changed.

==============  ======  ==================================================================================
operation       tasks   what it does
==============  ======  ==================================================================================
mention_swap    ner     one entity replaced by another mention of its type from the training split
                        (the lexicon), tags re-aligned (B- then I- over the new words)
typos           both    character drops, adjacent swaps and doubled characters (about 1 per 12 chars)
punctuation     both    punctuation swapped between its ideographic and ASCII forms, or dropped
                        (、↔, 。↔. — forms NFKC keeps apart; ！/！ and other folded pairs are left alone)
script          both    simplified ↔ traditional Chinese (``locale.script_variant``: s2t for zh, t2s for
                        zh_tw; needs ``opencc-python-reimplemented``)
casing          both    a word lower-, upper- or title-cased (scripts with case)
span_dropout    cls     a contiguous span of about a tenth of the text removed
span_swap       cls     two sentences (or two halves) of the text swapped
back_           cls     the text to a pivot language and back through two translation runs
translation             (``data.back_translation``: ``localize.back_translation``); first in the list
==============  ======  ==================================================================================
"""
from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localize.data.entities import entity_spans
from localize.data.errors import DataError

_SEED = "{seed}/augment/{id}/{copy}"
_PUNCT = {"、": (",", ""), ",": ("、", ""), "。": (".", ""), ".": ("。", ""), "!": ("",), "?": ("",),
          "「": ('"',), "」": ('"',), "・": (" ",)}
_SENTENCE_END = re.compile(r"(?<=[。！？!?\.])")


@dataclass
class Context:
    """What operations may read: the training split's entity lexicon and the locale."""

    lexicon: dict[str, list[list[str]]] = field(default_factory=dict)
    locale: Mapping[str, Any] = field(default_factory=dict)
    converter: Any = None
    back_translation: Any = None  # texts -> ({text: round trip}, record): localize.back_translation.RoundTrip
    paraphrases: dict[str, str] = field(default_factory=dict)  # text -> its round trip


def _typo_text(text: str, rng: random.Random) -> str:
    chars = list(text)
    n = max(1, round(len(chars) / 12)) if len(chars) > 1 else 0
    for _ in range(n):
        if len(chars) < 2:
            break
        i = rng.randrange(len(chars) - 1)
        kind = rng.randrange(3)
        if kind == 0:
            del chars[i]
        elif kind == 1:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        else:
            chars.insert(i, chars[i])
    return "".join(chars)


def _punct_text(text: str, rng: random.Random) -> str:
    return "".join(rng.choice(_PUNCT[c]) if c in _PUNCT and rng.random() < 0.5 else c for c in text)


def _case_word(word: str, rng: random.Random) -> str:
    return rng.choice((word.lower(), word.upper(), word.title()))


# ---- text operations: one function, used on a classification text and on each NER word ----------
def _on_words(words: list[str], tags: list[str], rng: random.Random, edit: Callable[[str, random.Random], str],
              share: float) -> tuple[list[str], list[str]]:
    """``edit`` on a share of the words; a word edited to nothing is dropped with its tag (only outside
    entities: an entity keeps its words)."""
    out_w, out_t = [], []
    for w, t in zip(words, tags):
        new = edit(w, rng) if rng.random() < share else w
        if not new.strip():
            if t != "O" or not w.strip():
                new = w
            else:
                continue
        out_w.append(new)
        out_t.append(t)
    return out_w, out_t


def typos(ex: dict, rng: random.Random, ctx: Context) -> dict | None:
    if "tokens" in ex:  # NER: entity words too (a misspelt name is still the name)
        long = [i for i, w in enumerate(ex["tokens"]) if len(w) > 1]
        if not long:
            return None
        words = list(ex["tokens"])
        for i in rng.sample(long, max(1, len(long) // 8)):
            words[i] = _typo_text(words[i], rng) or words[i]
        return {**ex, "tokens": words}
    return {**ex, "text": _typo_text(ex["text"], rng)}


def punctuation(ex: dict, rng: random.Random, ctx: Context) -> dict | None:
    if "tokens" in ex:
        words, tags = _on_words(ex["tokens"], ex["tags"], rng, _punct_text, 1.0)
        return {**ex, "tokens": words, "tags": tags}
    return {**ex, "text": _punct_text(ex["text"], rng)}


def script(ex: dict, rng: random.Random, ctx: Context) -> dict | None:
    if "tokens" in ex:
        return {**ex, "tokens": [ctx.converter.convert(w) or w for w in ex["tokens"]]}
    return {**ex, "text": ctx.converter.convert(ex["text"])}


def casing(ex: dict, rng: random.Random, ctx: Context) -> dict | None:
    if "tokens" in ex:
        words = list(ex["tokens"])
        i = rng.randrange(len(words))
        words[i] = _case_word(words[i], rng)
        return {**ex, "tokens": words}
    words = ex["text"].split(" ")
    i = rng.randrange(len(words))
    words[i] = _case_word(words[i], rng)
    return {**ex, "text": " ".join(words)}


def mention_swap(ex: dict, rng: random.Random, ctx: Context) -> dict | None:
    spans = entity_spans(ex["tags"])
    if not spans:
        return None
    start, end, kind = rng.choice(spans)
    old = ex["tokens"][start:end]
    choices = [m for m in ctx.lexicon.get(kind, []) if m != old]
    if not choices:
        return None
    new = rng.choice(choices)
    tags = [f"B-{kind}"] + [f"I-{kind}"] * (len(new) - 1)
    return {**ex, "tokens": ex["tokens"][:start] + list(new) + ex["tokens"][end:],
            "tags": ex["tags"][:start] + tags + ex["tags"][end:]}


def span_dropout(ex: dict, rng: random.Random, ctx: Context) -> dict | None:
    text = ex["text"]
    n = max(1, len(text) // 10)
    if len(text) <= n + 1:
        return None
    i = rng.randrange(len(text) - n)
    return {**ex, "text": text[:i] + text[i + n:]}


def span_swap(ex: dict, rng: random.Random, ctx: Context) -> dict | None:
    parts = [p for p in _SENTENCE_END.split(ex["text"]) if p]
    if len(parts) < 2:
        mid = len(ex["text"]) // 2
        parts = [ex["text"][:mid], ex["text"][mid:]]
    i, j = rng.sample(range(len(parts)), 2)
    parts[i], parts[j] = parts[j], parts[i]
    return {**ex, "text": "".join(parts)}


def back_translation(ex: dict, rng: random.Random, ctx: Context) -> dict | None:
    new = ctx.paraphrases.get(ex["text"])  # translated once for the whole split (augment)
    return {**ex, "text": new} if new else None


# name -> (operation, the example forms it reads: "tokens" for NER, "text" for classification)
OPERATIONS: dict[str, tuple[Callable[[dict, random.Random, Context], dict | None], tuple[str, ...]]] = {
    "mention_swap": (mention_swap, ("tokens",)), "typos": (typos, ("tokens", "text")),
    "punctuation": (punctuation, ("tokens", "text")), "script": (script, ("tokens", "text")),
    "casing": (casing, ("tokens", "text")), "span_dropout": (span_dropout, ("text",)),
    "span_swap": (span_swap, ("text",)), "back_translation": (back_translation, ("text",)),
}


def lexicon(examples: Sequence[dict]) -> dict[str, list[list[str]]]:
    """Entity mentions per type in ``examples`` (distinct, in first-seen order)."""
    out: dict[str, list[list[str]]] = {}
    for ex in examples:
        for s, e, kind in entity_spans(ex["tags"]):
            m = list(ex["tokens"][s:e])
            if m not in out.setdefault(kind, []):
                out[kind].append(m)
    return out


def check_augment(ops: Sequence[str], factor: Any, form: str, locale: Mapping[str, Any],
                  options: Mapping[str, Any] | None = None) -> Context:
    """A :class:`Context` for ``ops`` on examples of ``form``, or one :class:`DataError` line with the fix;
    ``options``: per-operation settings (``{"back_translation": data.back_translation}``)."""
    names = [str(o) for o in ops]
    unknown = [o for o in names if o not in OPERATIONS]
    if unknown:
        raise DataError(f"data.augment: unknown operation(s) {unknown}; known: {sorted(OPERATIONS)}. "
                        f"Fix: data.augment=[{','.join(o for o in names if o in OPERATIONS) or 'typos'}]")
    wrong = [o for o in names if form not in OPERATIONS[o][1]]
    if wrong:
        fits = [o for o in names if o not in wrong] or [n for n, (_, f) in OPERATIONS.items() if form in f][:1]
        raise DataError(f"data.augment: {wrong} do not apply to this task's examples. Fix: data.augment=[{','.join(fits)}]")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise DataError(f"data.augment_factor={factor}: new copies per training example, an integer >= 1. "
                        f"Fix: data.augment_factor=1")
    ctx = Context(locale=dict(locale or {}))
    if "back_translation" in names:
        if names[0] != "back_translation":  # its paraphrases are of the original texts
            rest = [o for o in names if o != "back_translation"]
            raise DataError(f"data.augment={names}: back_translation paraphrases the original text, so it goes "
                            f"first. Fix: data.augment=[{','.join(['back_translation', *rest])}]")
        if factor != 1:
            raise DataError(f"data.augment_factor={factor}: back_translation gives one paraphrase per text (the "
                            "runs decode greedily), so more copies would repeat it. Fix: data.augment_factor=1")
        ctx.back_translation = (options or {}).get("back_translation")
        if ctx.back_translation is None:
            raise DataError("data.augment=[back_translation] needs the two translation runs: set "
                            "data.back_translation.to_pivot=<xx→en run dir> data.back_translation.from_pivot=<en→xx run dir>")
        ctx.back_translation.check(ctx.locale)
    if "script" in names:
        variant = ctx.locale.get("script_variant")
        if not variant:
            raise DataError(f"data.augment=[script]: locale {ctx.locale.get('code')} has no script variant "
                            f"(locale.script_variant: s2t for zh, t2s for zh_tw). Fix: drop script from data.augment")
        try:
            from opencc import OpenCC
        except ImportError:
            raise DataError("data.augment=[script] converts with opencc, which is not installed. Fix: pip install "
                            "opencc-python-reimplemented (or drop script from data.augment)") from None
        ctx.converter = OpenCC(str(variant))
    return ctx


def _apply(ex: dict, ops: Sequence[str], seed: Any, copy: int, ctx: Context) -> dict:
    rng = random.Random(int(hashlib.sha256(_SEED.format(seed=seed, id=ex.get("id"), copy=copy).encode())
                            .hexdigest()[:16], 16))
    out = ex
    for name in ops:
        step = OPERATIONS[name][0](out, rng, ctx)
        out = step if step is not None else out
    return out


def _form(examples: Sequence[dict]) -> str:
    return "tokens" if examples and "tokens" in examples[0] else "text"


def augment(train: Sequence[dict], ops: Sequence[str], factor: int, seed: Any, locale: Mapping[str, Any],
            normalization: str | None, options: Mapping[str, Any] | None = None) -> tuple[list[dict], dict[str, Any]]:
    """``(the new examples, a record)``; ``train`` itself is not changed. A new example's id is
    ``<id>#aug<copy>`` and it carries ``augmented_from``. ``options``: see :func:`check_augment`."""
    form = _form(train)
    ctx = check_augment(ops, factor, form, locale, options)
    extra: dict[str, Any] = {}
    if form == "tokens":
        ctx.lexicon = lexicon(train)
    if ctx.back_translation:
        ctx.paraphrases, extra["back_translation"] = ctx.back_translation([ex["text"] for ex in train])
    new, unchanged = [], 0
    for ex in train:
        for copy in range(1, factor + 1):
            out = _apply(ex, ops, seed, copy, ctx)
            if _same(out, ex, form, normalization):
                unchanged += 1
                continue
            new.append({**out, "id": f"{ex.get('id')}#aug{copy}", "augmented_from": ex.get("id")})
    return new, {"operations": list(ops), "factor": factor, "seed": seed, "added": len(new),
                 "unchanged_dropped": unchanged, **extra}


def perturb(test: Sequence[dict], ops: Sequence[str], seed: Any, locale: Mapping[str, Any],
            normalization: str | None, lexicon_from: Sequence[dict] = ()) -> tuple[list[dict], dict[str, Any]]:
    """The test split with every example perturbed in place (same ids, labels kept aligned), for a
    robustness score paired with the clean one; ``changed`` counts those the perturbation really changed."""
    form = _form(test)
    ctx = check_augment(ops, 1, form, locale)
    if form == "tokens":
        ctx.lexicon = lexicon(lexicon_from)  # mention swaps draw from the training mentions
    out = [_apply(ex, ops, f"{seed}/perturb", 0, ctx) for ex in test]
    changed = sum(not _same(a, b, form, normalization) for a, b in zip(out, test))
    return out, {"operations": list(ops), "seed": seed, "changed": changed, "examples": len(test)}


def _same(a: dict, b: dict, form: str, normalization: str | None) -> bool:
    norm = (lambda s: unicodedata.normalize(normalization, s)) if normalization else (lambda s: s)  # noqa: E731
    if form == "tokens":
        return [norm(w) for w in a["tokens"]] == [norm(w) for w in b["tokens"]] and a["tags"] == b["tags"]
    return norm(a["text"]) == norm(b["text"])
