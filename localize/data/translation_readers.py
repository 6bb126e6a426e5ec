"""Translation pair sources: .po/.mo files, the system's gettext catalogs and OPUS-style hub corpora.

Every source yields pairs with ``id``, ``source`` (English), ``target``, ``context`` and ``catalog``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from localize.data.gettext_pairs import read_mo, read_po, system_catalog_pairs
from localize.data.sources import HubRow, task_sources

GETTEXT_ROOT = "/usr/share/locale"

# A folder given as data.path is one pool: every .po/.mo below it.
MT = task_sources("translation", "translation (.po/.mo)", folder="pool")


@MT.reader(".po")
def read_po_pairs(path: Path) -> list[dict]:
    return read_po(path)


@MT.reader(".mo")
def read_mo_pairs(path: Path) -> list[dict]:
    return read_mo(path)


def has_catalogs(lang: str | None, root: str = GETTEXT_ROOT) -> bool:
    """Whether ``<root>/<lang>/LC_MESSAGES`` holds any compiled catalog."""
    return bool(lang) and any(Path(root, lang, "LC_MESSAGES").glob("*.mo"))


@MT.corpus("gettext", available=lambda lang=None, **_: has_catalogs(lang))
def gettext_pairs(lang: str, info: dict, min_words: int = 3, drop_identical: bool = True,
                  exclude: Sequence[str] = ()) -> list[dict]:
    """Pairs of the installed catalogs of ``lang``; ``info`` gets the catalogs used and their licences."""
    pairs, catalogs = system_catalog_pairs(lang, min_words=min_words, drop_identical=drop_identical,
                                           exclude=list(exclude))
    info["source"] = f"gettext:{GETTEXT_ROOT}/{lang}/LC_MESSAGES"
    used = [c for c in catalogs if c["n_selected"]]
    info["catalogs"] = [{k: c[k] for k in ("catalog", "package", "version", "licence", "n_selected")} for c in used]
    info["licences"] = sorted({c["licence"] for c in used if c["licence"]})
    info["catalogs_without_licence"] = sorted(c["catalog"] for c in used if not c["licence"])
    return pairs


@MT.hub
def hub_pair(row: Mapping[str, Any], at: HubRow) -> dict:
    """A row of an OPUS-style corpus (``translation: {src: ..., tgt: ...}``, config ``src-tgt``)."""
    src, tgt = str(at.config).split("-", 1)
    return {"id": f"{at.hub_id}:{at.split}-{at.index}", "source": row["translation"][src],
            "target": row["translation"][tgt], "context": None, "catalog": at.config}
