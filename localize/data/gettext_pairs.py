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
"""

from __future__ import annotations

import fnmatch
import functools
import gettext
import hashlib
import logging
import os
import re
import struct
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from localize.data.errors import DataError

__all__ = [
    "read_mo", "write_mo", "read_po", "write_po", "system_catalog_pairs", "split_by_source",
    "debian_package", "debian_licence", "debian_version", "source_hash",
]

log = logging.getLogger(__name__)

_MO_MAGIC_LE = 0x950412DE
_MO_MAGIC_BE = 0xDE120495
_CTX_SEP = "\x04"
_PLURALS = ("singular", "skip")


# ----------------------------------------------------------------------------- helpers
def _pair_id(catalog: str, context: str | None, source: str) -> str:
    key = (context + _CTX_SEP if context is not None else "") + source
    return f"{catalog}:{hashlib.sha1(key.encode('utf-8')).hexdigest()[:10]}"


def _parse_header(text: str) -> dict[str, str]:
    """``"Key: value\\n"`` lines of a gettext header → dict (keys lower-cased)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _charset(header: Mapping[str, str]) -> str:
    m = re.search(r"charset\s*=\s*([^\s;]+)", header.get("content-type", ""), re.I)
    cs = m.group(1) if m else "utf-8"
    return "utf-8" if cs.upper() in {"CHARSET", "ASCII", "US-ASCII"} else cs


def _singular_index(header: Mapping[str, str]) -> int:
    """Index of the plural form gettext uses for n == 1 (0 when the header gives none)."""
    m = re.search(r"plural\s*=\s*([^;]+)", header.get("plural-forms", ""))
    if not m:
        return 0
    try:
        return int(gettext.c2py(m.group(1).strip())(1))
    except (ValueError, SyntaxError, RecursionError):
        return 0


def _make_pair(catalog: str, context: str | None, source: str, targets: Sequence[str],
               is_plural: bool, singular_index: int, plurals: str) -> dict | None:
    if source == "" and context is None:  # header
        return None
    if is_plural:
        if plurals == "skip":
            return None
        target = targets[singular_index] if singular_index < len(targets) else targets[0]
    else:
        target = targets[0]
    if not target:
        return None
    return {"id": _pair_id(catalog, context, source), "source": source, "target": target,
            "context": context, "catalog": catalog}


# ----------------------------------------------------------------------------- .mo
def read_mo(path: str | os.PathLike, plurals: str = "singular", catalog: str | None = None) -> list[dict]:
    """Read a compiled gettext catalog (GNU .mo, either byte order) into pairs.

    Parsed with ``struct`` per the GNU format rather than via ``gettext.GNUTranslations``,
    which merges contexts into keys, loses ``msgid_plural`` and raises on odd plural
    expressions. Strings are decoded with the header's charset (UTF-8 by default;
    undecodable bytes are replaced).

    Args:
        path: The .mo file.
        plurals: ``"singular"`` (msgid → form for n == 1, see module doc) or ``"skip"``.
        catalog: Name stored in ``catalog``/``id``; default the file stem.

    Returns:
        Pairs in file order (sorted by msgctxt\\x04msgid, as msgfmt writes them).
    """
    if plurals not in _PLURALS:
        raise ValueError(f"plurals must be one of {_PLURALS}, got {plurals!r}")
    path = Path(path)
    catalog = catalog or path.stem
    buf = path.read_bytes()
    if len(buf) < 20:
        raise DataError(f"{path}: too short for a .mo file")
    (magic,) = struct.unpack_from("<I", buf, 0)
    if magic == _MO_MAGIC_LE:
        end = "<"
    elif magic == _MO_MAGIC_BE:
        end = ">"
    else:
        raise DataError(f"{path}: not a GNU .mo file (magic {magic:#x})")
    revision, n, o_off, t_off = struct.unpack_from(end + "4I", buf, 4)
    if revision >> 16 > 1:
        raise DataError(f"{path}: unsupported .mo major revision {revision >> 16}")
    raw = []
    for i in range(n):
        olen, ooff = struct.unpack_from(end + "2I", buf, o_off + 8 * i)
        tlen, toff = struct.unpack_from(end + "2I", buf, t_off + 8 * i)
        if ooff + olen > len(buf) or toff + tlen > len(buf):
            raise DataError(f"{path}: string {i} lies outside the file (truncated?)")
        raw.append((buf[ooff:ooff + olen], buf[toff:toff + tlen]))

    header = {}
    for msgid, msgstr in raw:
        if msgid == b"":
            header = _parse_header(msgstr.decode("utf-8", "replace"))
            break
    charset = _charset(header)
    try:
        "".encode(charset)
    except LookupError:
        log.warning("%s: unknown charset %r, decoding as UTF-8", path, charset)
        charset = "utf-8"
    singular = _singular_index(header)

    pairs = []
    for msgid_b, msgstr_b in raw:
        msgid = msgid_b.decode(charset, "replace")
        msgstr = msgstr_b.decode(charset, "replace")
        context = None
        if _CTX_SEP in msgid:
            context, msgid = msgid.split(_CTX_SEP, 1)
        source, _, _plural = msgid.partition("\x00")
        is_plural = "\x00" in msgid
        pair = _make_pair(catalog, context, source, msgstr.split("\x00"), is_plural, singular, plurals)
        if pair is not None:
            pairs.append(pair)
    return pairs


def write_mo(entries: Iterable[Mapping[str, Any]], path: str | os.PathLike,
             header: str | None = None, big_endian: bool = False) -> Path:
    """Compile entries into a GNU .mo file (what ``msgfmt`` does; no hash table).

    Args:
        entries: Dicts with ``source``, ``target`` and optionally ``context``, ``plural``
            (msgid_plural) and ``targets`` (all msgstr[n] of a plural entry).
        path: Output file.
        header: Header msgstr; default a minimal UTF-8 header. ``""`` writes none.
        big_endian: Write a big-endian file (for testing readers).
    """
    if header is None:
        header = "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n"
    items: dict[bytes, bytes] = {}
    if header:
        items[b""] = header.encode("utf-8")
    for e in entries:
        key = e["source"]
        if e.get("plural") is not None:
            key += "\x00" + e["plural"]
            value = "\x00".join(e.get("targets") or [e["target"]])
        else:
            value = e["target"]
        if e.get("context") is not None:
            key = e["context"] + _CTX_SEP + key
        items[key.encode("utf-8")] = value.encode("utf-8")
    keys = sorted(items)
    end = ">" if big_endian else "<"
    n = len(keys)
    o_off = 28
    t_off = o_off + 8 * n
    data_off = t_off + 8 * n
    ids = strs = b""
    o_tab, t_tab = [], []
    for k in keys:
        o_tab.append((len(k), len(ids)))
        ids += k + b"\x00"
    for k in keys:
        t_tab.append((len(items[k]), len(strs)))
        strs += items[k] + b"\x00"
    out = struct.pack(end + "7I", _MO_MAGIC_LE, 0, n, o_off, t_off, 0, data_off)
    out += b"".join(struct.pack(end + "2I", ln, data_off + off) for ln, off in o_tab)
    out += b"".join(struct.pack(end + "2I", ln, data_off + len(ids) + off) for ln, off in t_tab)
    path = Path(path)
    path.write_bytes(out + ids + strs)
    return path


# ----------------------------------------------------------------------------- .po
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b",
            "f": "\f", "v": "\v", "'": "'", "?": "?"}
_ESC_RE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)", re.S)


def _unescape(s: str) -> str:
    def sub(m):
        e = m.group(1)
        if e[0] == "x":
            return chr(int(e[1:], 16))
        if e[0] in "01234567":
            return chr(int(e, 8))
        return _ESCAPES.get(e, e)
    return _ESC_RE.sub(sub, s)


def _escape(s: str) -> str:
    return (s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            .replace("\t", "\\t").replace("\r", "\\r"))


_PO_KEY_RE = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+"(.*)"\s*$')
_PO_CONT_RE = re.compile(r'^"(.*)"\s*$')


def _po_entries(text: str, path: Path) -> list[dict]:
    """Raw .po entries: context, msgid, plural, msgstrs (dict index→str), flags, comments, obsolete."""
    entries, cur, field = [], None, None

    def new():
        return {"context": None, "msgid": None, "plural": None, "msgstr": {}, "flags": [],
                "comments": [], "obsolete": False, "line": 0}

    def flush():
        nonlocal cur, field
        if cur is not None and cur["msgid"] is not None:
            entries.append(cur)
        cur, field = None, None

    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            flush()
            continue
        obsolete = s.startswith("#~")
        if obsolete:
            s = s[2:].strip()
            if not s or s.startswith("|"):  # "#~|" previous msgid of an obsolete entry
                continue
        if s.startswith("#"):
            if cur is not None and cur["msgid"] is not None and (field or "").startswith("msgstr"):
                flush()  # a comment after msgstr starts the next entry
            cur = cur or new()
            if s.startswith("#,"):
                cur["flags"] += [f.strip() for f in s[2:].split(",") if f.strip()]
            else:
                cur["comments"].append(s)
            continue
        m = _PO_KEY_RE.match(s)
        if m:
            key, idx, val = m.group(1), m.group(2), _unescape(m.group(3))
            if key in ("msgctxt", "msgid") and cur is not None and cur["msgid"] is not None \
                    and (field or "").startswith("msgstr"):
                flush()
            cur = cur or new()
            cur["obsolete"] |= obsolete
            if not cur["line"]:
                cur["line"] = lineno
            if key == "msgctxt":
                cur["context"], field = val, "msgctxt"
            elif key == "msgid":
                cur["msgid"], field = val, "msgid"
            elif key == "msgid_plural":
                cur["plural"], field = val, "msgid_plural"
            else:
                i = int(idx) if idx is not None else 0
                cur["msgstr"][i], field = val, f"msgstr[{i}]"
            continue
        m = _PO_CONT_RE.match(s)
        if m and cur is not None and field is not None:
            val = _unescape(m.group(1))
            if field == "msgctxt":
                cur["context"] += val
            elif field == "msgid":
                cur["msgid"] += val
            elif field == "msgid_plural":
                cur["plural"] += val
            else:
                i = int(field[7:-1])
                cur["msgstr"][i] += val
            continue
        raise DataError(f"{path}:{lineno}: cannot parse .po line {line!r}")
    flush()
    return entries


def read_po(path: str | os.PathLike, plurals: str = "singular", keep_untranslated: bool = False,
            keep_fuzzy: bool = False, catalog: str | None = None) -> list[dict]:
    """Read a .po file into pairs (same keys as :func:`read_mo`) plus the fields that
    :func:`write_po` needs to write the entry back.

    Extra keys: ``plural`` (msgid_plural or ``None``), ``targets`` (all msgstr[n] in index
    order; ``[target]`` for a singular entry), ``flags`` (``#,`` flags, e.g. ``c-format``),
    ``comments`` (the other comment lines, verbatim).

    Args:
        path: The .po/.pot file.
        plurals: ``"singular"`` or ``"skip"`` (see module doc).
        keep_untranslated: Keep entries with an empty translation (``target == ""``), e.g. to
            fill a template with predictions.
        keep_fuzzy: Keep ``#, fuzzy`` entries.
        catalog: Name stored in ``catalog``/``id``; default the file stem.
    """
    if plurals not in _PLURALS:
        raise ValueError(f"plurals must be one of {_PLURALS}, got {plurals!r}")
    path = Path(path)
    catalog = catalog or path.stem
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        m = re.search(rb"charset\s*=\s*([A-Za-z0-9_.:-]+)", raw)
        text = raw.decode(m.group(1).decode() if m else "latin-1", "replace")
    text = text.lstrip("\ufeff")
    entries = _po_entries(text, path)
    header = next((_parse_header(e["msgstr"].get(0, "")) for e in entries
                   if e["msgid"] == "" and e["context"] is None and not e["obsolete"]), {})
    singular = _singular_index(header)
    out = []
    for e in entries:
        if e["obsolete"] or (e["msgid"] == "" and e["context"] is None):
            continue
        if "fuzzy" in e["flags"] and not keep_fuzzy:
            continue
        targets = [e["msgstr"][i] for i in sorted(e["msgstr"])] or [""]
        is_plural = e["plural"] is not None
        if is_plural and plurals == "skip":
            continue
        target = (targets[singular] if singular < len(targets) else targets[0]) if is_plural else targets[0]
        if not target and not keep_untranslated:
            continue
        out.append({"id": _pair_id(catalog, e["context"], e["msgid"]), "source": e["msgid"],
                    "target": target, "context": e["context"], "catalog": catalog,
                    "plural": e["plural"], "targets": targets, "flags": e["flags"],
                    "comments": e["comments"]})
    return out


def _po_string(key: str, value: str) -> str:
    """``key "value"``, split after each ``\\n`` like msgcat when the string has several lines."""
    lines = value.split("\n")
    chunks = [ln + "\n" for ln in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    if len(chunks) <= 1:
        return f'{key} "{_escape(value)}"\n'
    return f'{key} ""\n' + "".join(f'"{_escape(c)}"\n' for c in chunks)


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
    fields = {"Project-Id-Version": "localize", "MIME-Version": "1.0",
              "Content-Type": "text/plain; charset=UTF-8", "Content-Transfer-Encoding": "8bit"}
    if lang:
        fields["Language"] = lang
    if plural_forms:
        fields["Plural-Forms"] = plural_forms
    fields.update(header or {})
    nplurals = 2
    m = re.search(r"nplurals\s*=\s*(\d+)", fields.get("Plural-Forms", ""))
    if m:
        nplurals = int(m.group(1))
    parts = ['msgid ""\n' + _po_string("msgstr", "".join(f"{k}: {v}\n" for k, v in fields.items()))]
    for e in entries:
        block = "".join(f"{c}\n" for c in e.get("comments") or [])
        if e.get("flags"):
            block += "#, " + ", ".join(e["flags"]) + "\n"
        if e.get("context") is not None:
            block += _po_string("msgctxt", e["context"])
        block += _po_string("msgid", e["source"])
        if e.get("plural") is not None:
            block += _po_string("msgid_plural", e["plural"])
            targets = list(e.get("targets") or [e.get("target") or ""] * nplurals)
            for i, t in enumerate(targets):
                block += _po_string(f"msgstr[{i}]", t)
        else:
            block += _po_string("msgstr", e.get("target") or "")
        parts.append(block)
    path = Path(path)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- Debian metadata
@functools.lru_cache(maxsize=None)
def _dpkg_owners(paths: tuple[str, ...]) -> dict[str, str]:
    """``dpkg -S`` for many paths in one call → {path: package}; {} when dpkg is unavailable."""
    try:
        res = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return {}
    owners = {}
    for line in res.stdout.splitlines():
        if line.startswith("diversion ") or ": " not in line:
            continue
        pkgs, p = line.rsplit(": ", 1)
        pkg = pkgs.split(",")[0].strip().split(":")[0]  # "libc-bin:amd64, x" -> libc-bin
        owners[p.strip()] = pkg
    return owners


def debian_package(path: str | os.PathLike) -> str | None:
    """The Debian package owning ``path`` (``dpkg -S``, cached), or ``None``."""
    return _dpkg_owners((str(path),)).get(str(path))


@functools.lru_cache(maxsize=None)
def _dpkg_versions(packages: tuple[str, ...]) -> dict[str, str]:
    try:
        res = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\n", *packages],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(line.split("\t", 1) for line in res.stdout.splitlines() if "\t" in line)


def debian_version(package: str | None) -> str | None:
    """Installed version of a Debian package (``dpkg-query``, cached), or ``None``."""
    return _dpkg_versions((package,)).get(package) if package else None


@functools.lru_cache(maxsize=None)
def debian_licence(package: str | None, doc_root: str = "/usr/share/doc") -> str | None:
    """First ``License:`` value in ``/usr/share/doc/<package>/copyright`` (DEP-5), or ``None``."""
    if not package:
        return None
    try:
        with open(Path(doc_root) / package / "copyright", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("License:"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        return None
    return None


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
    owners = _dpkg_owners(tuple(str(f) for f in files)) if files else {}
    versions = _dpkg_versions(tuple(sorted(set(owners.values())))) if owners else {}
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
def source_hash(source: str, seed: int | str = 0) -> float:
    """Deterministic position of ``source`` in [0, 1): sha1 of ``"<seed>\\x00<source>"``."""
    h = hashlib.sha1(f"{seed}\x00{source}".encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


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
    hashes = {s: source_hash(s, seed) for s in {p["source"] for p in pairs}}
    split_of: dict[str, str] = {}
    given = [x for x in sizes if x is not None]
    if dev_s is None or test_s is None or any(isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0
                                              for x in given):
        raise ValueError(f"sizes must be non-negative numbers (train may be None), got {sizes!r}")
    if any(isinstance(x, float) for x in given):  # fractions
        train_f = 1.0 - dev_s - test_s if train_s is None else train_s
        if train_f < -1e-9 or train_f + dev_s + test_s > 1 + 1e-9:
            raise ValueError(f"fractions must sum to ≤ 1, got {sizes!r}")
        for s, h in hashes.items():
            if h < dev_s:
                split_of[s] = "dev"
            elif h < dev_s + test_s:
                split_of[s] = "test"
            elif h < dev_s + test_s + train_f:
                split_of[s] = "train"
    else:  # counts of distinct sources
        order = sorted(hashes, key=lambda s: (hashes[s], s))
        n_train = len(order) if train_s is None else train_s
        for i, s in enumerate(order):
            if i < dev_s:
                split_of[s] = "dev"
            elif i < dev_s + test_s:
                split_of[s] = "test"
            elif i < dev_s + test_s + n_train:
                split_of[s] = "train"
    out: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for p in pairs:
        sp = split_of.get(p["source"])
        if sp is not None:
            out[sp].append(p)
    if max_train is not None and len(out["train"]) > max_train:
        rank = sorted(range(len(out["train"])), key=lambda i: (hashes[out["train"][i]["source"]], i))
        keep = set(rank[:max_train])
        out["train"] = [p for i, p in enumerate(out["train"]) if i in keep]
    return out
