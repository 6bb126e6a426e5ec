"""en→xx UI-string pairs from gettext catalogs (.mo/.po), and a .po writer for predictions.

Every reader returns ``list[dict]`` pairs with the keys

* ``id``      – ``"<catalog>:<sha1(context \\x04 source)[:10]>"``, stable across catalog versions;
* ``source``  – the English ``msgid`` (singular form for plural entries);
* ``target``  – its translation;
* ``context`` – ``msgctxt`` or ``None`` (gettext stores it as ``"ctx\\x04msgid"`` in .mo files);
* ``catalog`` – the catalog (domain) name, i.e. the file name without ``.mo``/``.po``.

Plural entries (``msgid``/``msgid_plural``/``msgstr[n]``) become one pair: the singular
``msgid`` → the plural form gettext selects for ``n == 1`` according to the catalog's
``Plural-Forms`` header. That is ``msgstr[0]`` for almost every language (ja/zh/ko/th have one
form only, es/de/hi use ``n != 1``), but ``msgstr[1]`` for Arabic, whose ``msgstr[0]`` is the
``n == 0`` form. Without a parsable ``Plural-Forms`` header ``msgstr[0]`` is used. Pass
``plurals="skip"`` to drop plural entries instead.

The header entry (``msgid ""``) and entries whose chosen translation is empty are skipped;
.po readers also skip ``#, fuzzy`` and obsolete (``#~``) entries.

Files are read and written by polib (.po and .mo, either byte order, contexts, plurals, flags,
comments, headers); this module only turns its entries into pairs, walks the system catalogs
and splits by source.
"""

from __future__ import annotations

import fnmatch
import gettext
import hashlib
import logging
import os
import re
import struct
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polib

from localize.data.debian import debian_licence, debian_package, debian_version, package_owners, package_versions
from localize.data.errors import DataError
from localize.data.sources import source_hash, split_examples  # noqa: F401 (source_hash re-exported)

__all__ = [
    "read_mo", "write_mo", "read_po", "write_po", "read_po_header", "system_catalog_pairs", "split_by_source",
    "debian_package", "debian_licence", "debian_version", "source_hash",
]

log = logging.getLogger(__name__)

_PLURALS = ("singular", "skip")
_DEFAULT_HEADER = {"MIME-Version": "1.0", "Content-Type": "text/plain; charset=UTF-8",
                   "Content-Transfer-Encoding": "8bit"}
_PREVIOUS_RE = re.compile(r'^(msgctxt|msgid_plural|msgid)\s+"(.*)"$')


# ----------------------------------------------------------------------------- entries -> pairs
def _pair_id(catalog: str, context: str | None, source: str) -> str:
    key = (context + "\x04" if context is not None else "") + source
    return f"{catalog}:{hashlib.sha1(key.encode('utf-8')).hexdigest()[:10]}"


def _singular_index(metadata: Mapping[str, str]) -> int:
    """Index of the plural form gettext uses for n == 1 (0 when the header gives none)."""
    forms = next((v for k, v in metadata.items() if k.lower() == "plural-forms"), "")
    m = re.search(r"plural\s*=\s*([^;]+)", forms)
    if not m:
        return 0
    try:
        return int(gettext.c2py(m.group(1).strip())(1))
    except (ValueError, SyntaxError, RecursionError):
        return 0


def _comments(e: polib.POEntry) -> list[str]:
    """The entry's comment lines as gettext writes them: translator, extracted, references, previous."""
    out = [f"# {c}".rstrip() for c in e.tcomment.split("\n")] if e.tcomment else []
    out += [f"#. {c}".rstrip() for c in e.comment.split("\n")] if e.comment else []
    if e.occurrences:
        out.append("#: " + " ".join(f"{f}:{n}" if n else f for f, n in e.occurrences))
    for key in ("msgctxt", "msgid", "msgid_plural"):
        if previous := getattr(e, f"previous_{key}", None):
            out.append(f'#| {key} "{polib.escape(previous)}"')
    return out


def _pairs(cat: polib._BaseFile, catalog: str, plurals: str, keep_untranslated: bool = False,
           keep_fuzzy: bool = False, po_fields: bool = False) -> list[dict]:
    """Pairs from a parsed catalog, in file order (see the module doc for what is skipped)."""
    if plurals not in _PLURALS:
        raise ValueError(f"plurals must be one of {_PLURALS}, got {plurals!r}")
    singular = _singular_index(cat.metadata)
    out = []
    for e in cat:
        if e.obsolete or ("fuzzy" in e.flags and not keep_fuzzy) or (e.msgid == "" and e.msgctxt is None):
            continue
        plural = e.msgid_plural or None
        if plural is not None and plurals == "skip":
            continue
        targets = ([e.msgstr_plural[i] for i in sorted(e.msgstr_plural)] or [""]) if plural else [e.msgstr]
        target = targets[singular] if plural and singular < len(targets) else targets[0]
        if not target and not keep_untranslated:
            continue
        pair = {"id": _pair_id(catalog, e.msgctxt, e.msgid), "source": e.msgid, "target": target,
                "context": e.msgctxt, "catalog": catalog}
        if po_fields:
            pair.update(plural=plural, targets=targets, flags=list(e.flags), comments=_comments(e))
        out.append(pair)
    return out


# ----------------------------------------------------------------------------- .mo
def read_mo(path: str | os.PathLike, plurals: str = "singular", catalog: str | None = None) -> list[dict]:
    """Read a compiled gettext catalog (GNU .mo, either byte order) into pairs.

    Read with polib rather than ``gettext.GNUTranslations``, which merges contexts into keys,
    loses ``msgid_plural`` and raises on odd plural expressions. Strings are decoded with the
    header's charset (UTF-8 when it names none, or one Python does not know).

    Args:
        path: The .mo file.
        plurals: ``"singular"`` (msgid → form for n == 1, see module doc) or ``"skip"``.
        catalog: Name stored in ``catalog``/``id``; default the file stem.

    Returns:
        Pairs in file order (sorted by msgctxt\\x04msgid, as msgfmt writes them).

    Raises:
        DataError: not a GNU .mo file, truncated, or a string its charset cannot decode.
    """
    path = Path(path)
    buf = path.read_bytes()  # bytes, not the path: polib reads a missing path as file content
    try:
        mo = polib.mofile(buf)
    except (OSError, struct.error, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a GNU .mo file, or a damaged one ({err})") from err
    return _pairs(mo, catalog or path.stem, plurals)


def _catalog(entries: Iterable[Mapping[str, Any]], metadata: Mapping[str, str], flags: bool = True) -> polib.POFile:
    """A polib catalog of pair-like entries (see :func:`write_po` for the keys)."""
    cat = polib.POFile()
    cat.metadata = dict(metadata)
    m = re.search(r"nplurals\s*=\s*(\d+)", cat.metadata.get("Plural-Forms", ""))
    nplurals = int(m.group(1)) if m else 2
    for e in entries:
        entry = polib.POEntry(msgid=e["source"], msgctxt=e.get("context"),
                              flags=list(e.get("flags") or []) if flags else [])
        if e.get("plural") is not None:
            entry.msgid_plural = e["plural"]
            entry.msgstr_plural = dict(enumerate(e.get("targets") or [e.get("target") or ""] * nplurals))
        else:
            entry.msgstr = e.get("target") or ""
        _set_comments(entry, e.get("comments") or [])
        cat.append(entry)
    return cat


def _set_comments(entry: polib.POEntry, comments: Sequence[str]) -> None:
    """Put comment lines (as :func:`read_po` returns them) back into polib's fields."""
    translator, extracted = [], []
    for line in comments:
        kind, body = (line[:2], line[2:].removeprefix(" ")) if line[1:2] in ".:|" else ("#", line[1:].removeprefix(" "))
        if kind == "#.":
            extracted.append(body)
        elif kind == "#:":
            for ref in body.split():
                file, _, n = ref.rpartition(":")
                entry.occurrences.append((file, n) if file and n.isdigit() else (ref, ""))
        elif kind == "#|" and (m := _PREVIOUS_RE.match(body)):
            setattr(entry, f"previous_{m.group(1)}", polib.unescape(m.group(2)))
        else:
            translator.append(body)
    entry.tcomment, entry.comment = "\n".join(translator), "\n".join(extracted)


def write_mo(entries: Iterable[Mapping[str, Any]], path: str | os.PathLike, header: str | None = None) -> Path:
    """Compile entries into a GNU .mo file (what ``msgfmt`` does; untranslated entries are left out).

    Args:
        entries: Dicts with ``source``, ``target`` and optionally ``context``, ``plural``
            (msgid_plural) and ``targets`` (all msgstr[n] of a plural entry).
        path: Output file.
        header: Header msgstr (``"Key: value\\n"`` lines); default a minimal UTF-8 header.
            ``""`` writes an empty one.
    """
    fields = _DEFAULT_HEADER if header is None else dict(
        (k.strip(), v.strip()) for k, sep, v in (ln.partition(":") for ln in header.splitlines()) if sep)
    path = Path(path)
    _catalog(entries, fields, flags=False).save_as_mofile(str(path))
    return path


# ----------------------------------------------------------------------------- .po
def _read_po_file(path: Path) -> polib.POFile:
    if not path.is_file():  # polib would parse a missing path as .po text
        raise FileNotFoundError(f"no .po file at {path}")
    try:
        return polib.pofile(str(path))
    except (OSError, ValueError) as err:  # polib reports syntax errors as OSError
        raise DataError(f"{path}: cannot parse .po file: {err}") from err


def read_po(path: str | os.PathLike, plurals: str = "singular", keep_untranslated: bool = False,
            keep_fuzzy: bool = False, catalog: str | None = None) -> list[dict]:
    """Read a .po file into pairs (same keys as :func:`read_mo`) plus the fields that
    :func:`write_po` needs to write the entry back.

    Extra keys: ``plural`` (msgid_plural or ``None``), ``targets`` (all msgstr[n] in index
    order; ``[target]`` for a singular entry), ``flags`` (``#,`` flags, e.g. ``c-format``),
    ``comments`` (the other comment lines, as gettext writes them: ``# ``, ``#. ``, one ``#: ``
    line with every reference, ``#| ``).

    Args:
        path: The .po/.pot file.
        plurals: ``"singular"`` or ``"skip"`` (see module doc).
        keep_untranslated: Keep entries with an empty translation (``target == ""``), e.g. to
            fill a template with predictions.
        keep_fuzzy: Keep ``#, fuzzy`` entries.
        catalog: Name stored in ``catalog``/``id``; default the file stem.

    Raises:
        DataError: polib cannot parse the file.
    """
    path = Path(path)
    return _pairs(_read_po_file(path), catalog or path.stem, plurals, keep_untranslated, keep_fuzzy, po_fields=True)


def read_po_header(path: str | os.PathLike) -> dict[str, str]:
    """The header fields of a .po file, keys lower-cased (``language``, ``plural-forms``); {} without one."""
    return {k.lower(): v for k, v in _read_po_file(Path(path)).metadata.items()}


def write_po(entries: Iterable[Mapping[str, Any]], path: str | os.PathLike, lang: str | None = None,
             plural_forms: str | None = None, header: Mapping[str, str] | None = None) -> Path:
    """Write entries as a UTF-8 .po file (e.g. a catalog filled with model predictions).

    Args:
        entries: Dicts with ``source`` and ``target``; optional ``context``, ``plural`` +
            ``targets`` (plural entries; if ``targets`` is missing, ``target`` is repeated for
            every form — set ``plural_forms`` accordingly), ``flags`` and ``comments``.
        path: Output file.
        lang: Value of the ``Language`` header field.
        plural_forms: ``Plural-Forms`` header value, e.g. ``"nplurals=1; plural=0;"``.
        header: Extra header fields (override the defaults).

    Returns:
        The path written; ``msgfmt --check`` accepts it.
    """
    fields = {"Project-Id-Version": "localize", **_DEFAULT_HEADER}
    if lang:
        fields["Language"] = lang
    if plural_forms:
        fields["Plural-Forms"] = plural_forms
    fields.update(header or {})
    path = Path(path)
    _catalog(entries, fields).save(str(path))
    return path


# ----------------------------------------------------------------------------- system catalogs
def system_catalog_pairs(lang: str, root: str | os.PathLike = "/usr/share/locale", min_words: int = 3,
                         plurals: str = "singular", drop_identical: bool = False,
                         exclude: Sequence[str] = ()) -> tuple[list[dict], list[dict]]:
    """All en→``lang`` pairs from the installed catalogs ``root/<lang>/LC_MESSAGES/*.mo``.

    Sources with fewer than ``min_words`` whitespace-separated words are dropped (single
    words and two-word labels are mostly ambiguous without context). Each English source is
    kept once across all catalogs and contexts, with its most frequent translation (ties →
    the lexicographically smallest); ``context``/``catalog``/``id`` come from the first
    catalog (by name) that has that translation.

    Args:
        lang: Locale directory name, e.g. ``"ja"``, ``"zh_CN"``.
        root: The locale tree.
        min_words: Minimum number of words in the source.
        plurals: ``"singular"`` or ``"skip"`` (see module doc).
        drop_identical: Drop pairs whose target equals the source (untranslated copies).
        exclude: ``fnmatch`` patterns of catalog names to leave out, e.g. ``["postgres-*", "git"]``
            (server/CLI messages rather than UI strings).

    Returns:
        ``(pairs, catalogs)``; pairs sorted by source; ``catalogs`` is one dict per .mo file:
        ``catalog``, ``path``, ``package`` (``dpkg -S``, or ``None``), ``version`` (the
        package's installed version, or ``None``), ``licence`` (first
        ``License:`` of the package's copyright file, or ``None``), ``n_entries`` (translated
        entries read) and ``n_pairs`` (of those, kept by the word filter, before de-duplication
        across catalogs) and ``n_selected`` (pairs in the result that come from this catalog).
    """
    files = [f for f in sorted(Path(root, lang, "LC_MESSAGES").glob("*.mo"))
             if not any(fnmatch.fnmatchcase(f.stem, pat) for pat in exclude)]
    owners = package_owners(tuple(str(f) for f in files)) if files else {}
    versions = package_versions(tuple(sorted(set(owners.values())))) if owners else {}
    by_source: dict[str, list[dict]] = defaultdict(list)
    catalogs = []
    for f in files:
        try:
            entries = read_mo(f, plurals=plurals)
        except DataError as err:
            log.warning("skipping %s", err)
            continue
        kept = [p for p in entries if len(p["source"].split()) >= min_words
                and not (drop_identical and p["target"] == p["source"])]
        for p in kept:
            by_source[p["source"]].append(p)
        pkg = owners.get(str(f))
        catalogs.append({"catalog": f.stem, "path": str(f), "package": pkg, "version": versions.get(pkg),
                         "licence": debian_licence(pkg),
                         "n_entries": len(entries), "n_pairs": len(kept), "n_selected": 0})
    pairs = []
    for source in sorted(by_source):
        cands = by_source[source]
        counts = Counter(p["target"] for p in cands)
        best = min(counts, key=lambda t: (-counts[t], t))
        pairs.append(dict(next(p for p in cands if p["target"] == best)))
    selected = Counter(p["catalog"] for p in pairs)
    for c in catalogs:
        c["n_selected"] = selected.get(c["catalog"], 0)
    return pairs, catalogs


# ----------------------------------------------------------------------------- splitting
def split_by_source(pairs: Sequence[dict], sizes: Sequence[float | int] = (0.8, 0.1, 0.1),
                    seed: int | str = 0, max_train: int | None = None) -> dict[str, list[dict]]:
    """Split pairs into train/dev/test by a hash of the *source* string.

    All pairs with the same ``source`` land in the same split, so an English string never
    appears in two splits. Input order is kept inside each split.

    Args:
        pairs: Dicts with a ``source`` key.
        sizes: ``(train, dev, test)`` either as fractions of the distinct sources (sum ≤ 1;
            a source's split depends only on its own hash, so it is stable when the pool
            grows) or as numbers of distinct sources (``None`` for train = all the rest); in
            both cases dev is taken first in hash order, then test, then train, so dev/test do
            not change when only the train size changes.
        seed: Hash seed.
        max_train: Keep at most this many train pairs: the first in hash order, so smaller
            caps are subsets of larger ones (nested, for data-scaling curves).

    Returns:
        ``{"train": [...], "dev": [...], "test": [...]}``.
    """
    if len(sizes) != 3:
        raise ValueError(f"sizes must be (train, dev, test), got {sizes!r}")
    train_s, dev_s, test_s = sizes
    # Dev first, then test, then train: see localize.data.sources.split_examples (grouped).
    split = split_examples(pairs, {"dev": dev_s, "test": test_s, "train": train_s}, seed,
                           group=lambda p: p["source"], keep_order=True)
    out = {name: split[name] for name in ("train", "dev", "test")}
    if max_train is not None and len(out["train"]) > max_train:
        rank = sorted(range(len(out["train"])), key=lambda i: (source_hash(out["train"][i]["source"], seed), i))
        keep = set(rank[:max_train])
        out["train"] = [p for i, p in enumerate(out["train"]) if i in keep]
    return out
