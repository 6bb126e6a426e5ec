"""gettext readers/writers, system catalogs and the by-source split."""

from __future__ import annotations

import gettext
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from localize.data.errors import DataError
from localize.data.gettext_pairs import (read_mo, read_po, source_hash, split_by_source,
                                         system_catalog_pairs, write_mo, write_po)

HEADER_JA = ("Project-Id-Version: demo\nLanguage: ja\nMIME-Version: 1.0\n"
             "Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n"
             "Plural-Forms: nplurals=1; plural=0;\n")
HEADER_AR = HEADER_JA.replace("Language: ja", "Language: ar").replace(
    "nplurals=1; plural=0;",
    "nplurals=6; plural=n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : n%100>=3 && n%100<=10 ? 3 : n%100>=11 ? 4 : 5;")


def _mo_bytes(items: dict[bytes, bytes], big_endian: bool = False) -> bytes:
    """A .mo file written by hand (independent of write_mo), per the GNU layout."""
    end = ">" if big_endian else "<"
    keys = sorted(items)
    n, o_off = len(keys), 28
    t_off = o_off + 8 * n
    data = t_off + 8 * n
    blob, o_tab, t_tab = b"", [], []
    for k in keys:
        o_tab.append((len(k), data + len(blob)))
        blob += k + b"\0"
    for k in keys:
        t_tab.append((len(items[k]), data + len(blob)))
        blob += items[k] + b"\0"
    head = struct.pack(end + "7I", 0x950412DE, 0, n, o_off, t_off, 0, 0)
    tabs = b"".join(struct.pack(end + "2I", *x) for x in o_tab + t_tab)
    return head + tabs + blob


DEMO_ITEMS = {
    b"": HEADER_JA.encode(),
    b"Open file": "ファイルを開く".encode(),
    b"menu\x04Open": "開く".encode(),                                  # context
    b"%d file\x00%d files": "%d 個のファイル".encode(),                 # plural
    b"Untranslated string": b"",                                        # untranslated
}
DEMO_PAIRS = [  # sorted by msgid bytes, as in the file
    {"source": "%d file", "target": "%d 個のファイル", "context": None, "catalog": "demo"},
    {"source": "Open file", "target": "ファイルを開く", "context": None, "catalog": "demo"},
    {"source": "Open", "target": "開く", "context": "menu", "catalog": "demo"},
]


def _strip_ids(pairs):
    return [{k: v for k, v in p.items() if k != "id"} for p in pairs]


@pytest.mark.parametrize("big_endian", [False, True])
def test_read_mo_exact_pairs(tmp_path, big_endian):
    path = tmp_path / "demo.mo"
    path.write_bytes(_mo_bytes(DEMO_ITEMS, big_endian))
    pairs = read_mo(path)
    assert _strip_ids(pairs) == DEMO_PAIRS
    assert all(set(p) == {"id", "source", "target", "context", "catalog"} for p in pairs)
    assert pairs[1]["id"].startswith("demo:") and len({p["id"] for p in pairs}) == 3
    assert [p["source"] for p in read_mo(path, plurals="skip")] == ["Open file", "Open"]
    # cross-check with the standard library's reader
    cat = gettext.GNUTranslations(open(path, "rb"))._catalog
    assert cat["Open file"] == "ファイルを開く" and cat["menu\x04Open"] == "開く"


def test_read_mo_arabic_plural_uses_form_for_one(tmp_path):
    forms = ["لا ملفات", "ملف واحد", "ملفان", "%d ملفات", "%d ملفًا", "%d ملف"]
    path = tmp_path / "ar.mo"
    path.write_bytes(_mo_bytes({b"": HEADER_AR.encode(),
                                b"One file\x00%d files": "\x00".join(forms).encode()}))
    assert [p["target"] for p in read_mo(path)] == ["ملف واحد"]


def test_read_mo_rejects_garbage(tmp_path):
    bad = tmp_path / "bad.mo"
    bad.write_bytes(b"not a mo file at all....")
    with pytest.raises(DataError, match="not a GNU .mo"):
        read_mo(bad)


def test_write_mo_roundtrip_and_msgfmt(tmp_path):
    entries = [{"source": "Open file", "target": "ファイルを開く"},
               {"source": "Open", "target": "開く", "context": "menu"},
               {"source": "%d file", "plural": "%d files", "target": "%d 個のファイル", "targets": ["%d 個のファイル"]}]
    path = write_mo(entries, tmp_path / "w.mo", header=HEADER_JA)
    assert _strip_ids(read_mo(path)) == [{**p, "catalog": "w"} for p in DEMO_PAIRS]
    if shutil.which("msgfmt"):  # the real msgfmt compiles the .po we write into the same pairs
        po = write_po(entries, tmp_path / "w.po", lang="ja", plural_forms="nplurals=1; plural=0;")
        mo = tmp_path / "msgfmt.mo"
        subprocess.run(["msgfmt", "--check", "-o", str(mo), str(po)], check=True)
        assert _strip_ids(read_mo(mo, catalog="w")) == _strip_ids(read_mo(path))


PO_TEXT = r'''# Japanese translation.
msgid ""
msgstr ""
"Language: ja\n"
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=1; plural=0;\n"

#. Translators: a menu item
#: src/main.c:10
#, c-format
msgid "Open %s"
msgstr "%s を開く"

msgctxt "menu"
msgid "Open"
msgstr "開く"

msgid ""
"Line one\n"
"Line \"two\"\t\\end"
msgstr ""
"一行目\n"
"二行目「\"」\t\\"

#, fuzzy
msgid "Fuzzy entry"
msgstr "あいまい"

msgid "%d file"
msgid_plural "%d files"
msgstr[0] "%d 個のファイル"

msgid "Not translated"
msgstr ""

#~ msgid "Obsolete"
#~ msgstr "廃止"
'''


def test_read_po_parses_everything(tmp_path):
    path = tmp_path / "demo.po"
    path.write_text(PO_TEXT, encoding="utf-8")
    pairs = read_po(path)
    assert [(p["source"], p["target"], p["context"]) for p in pairs] == [
        ("Open %s", "%s を開く", None),
        ("Open", "開く", "menu"),
        ('Line one\nLine "two"\t\\end', '一行目\n二行目「"」\t\\', None),
        ("%d file", "%d 個のファイル", None),
    ]
    assert pairs[0]["flags"] == ["c-format"] and pairs[0]["comments"] == ["#. Translators: a menu item",
                                                                          "#: src/main.c:10"]
    assert pairs[3]["plural"] == "%d files" and pairs[3]["targets"] == ["%d 個のファイル"]
    everything = read_po(path, keep_untranslated=True, keep_fuzzy=True)
    assert {p["source"] for p in everything} - {p["source"] for p in pairs} == {"Fuzzy entry", "Not translated"}


def test_po_round_trip(tmp_path):
    src = tmp_path / "demo.po"
    src.write_text(PO_TEXT, encoding="utf-8")
    entries = read_po(src, keep_untranslated=True, keep_fuzzy=True)
    out = write_po(entries, tmp_path / "out.po", lang="ja", plural_forms="nplurals=1; plural=0;")
    again = read_po(out, keep_untranslated=True, keep_fuzzy=True, catalog="demo")
    assert again == entries
    # predictions fill a template: empty targets replaced, written, read back
    filled = [{**e, "target": e["target"] or "予測"} for e in entries if e["plural"] is None]
    back = read_po(write_po(filled, tmp_path / "pred.po", lang="ja"), keep_fuzzy=True)
    assert {p["source"]: p["target"] for p in back}["Not translated"] == "予測"
    if shutil.which("msgfmt"):
        subprocess.run(["msgfmt", "--check", "-o", "/dev/null", str(out)], check=True)


def _pairs(n):
    # several pairs share a source (different catalogs/targets), as before de-duplication
    return [{"source": f"source string {i % (n // 3)}", "target": f"t{i}", "catalog": f"c{i % 4}"}
            for i in range(n)]


@pytest.mark.parametrize("sizes", [(0.8, 0.1, 0.1), (None, 10, 20), (50, 10, 20), (0.5, 0.25, 0.25)])
def test_split_by_source_is_disjoint_and_deterministic(sizes):
    pairs = _pairs(600)
    a = split_by_source(pairs, sizes, seed=3)
    assert a == split_by_source(list(pairs), sizes, seed=3)
    srcs = {k: {p["source"] for p in v} for k, v in a.items()}
    assert not (srcs["train"] & srcs["dev"] or srcs["train"] & srcs["test"] or srcs["dev"] & srcs["test"])
    if isinstance(sizes[1], int):
        assert (len(srcs["dev"]), len(srcs["test"])) == sizes[1:]
        if sizes[0] is not None:
            assert len(srcs["train"]) == sizes[0]
    if sizes[0] in (None, 0.8):  # nothing lost
        assert sum(len(v) for v in a.values()) == len(pairs)
    assert split_by_source(pairs, sizes, seed=4) != a


def test_split_dev_test_fixed_when_train_changes_and_max_train_nested():
    pairs = _pairs(900)
    small = split_by_source(pairs, (20, 30, 30), seed=0)
    big = split_by_source(pairs, (None, 30, 30), seed=0)
    assert small["dev"] == big["dev"] and small["test"] == big["test"]
    capped10 = split_by_source(pairs, (0.8, 0.1, 0.1), max_train=10)["train"]
    capped50 = split_by_source(pairs, (0.8, 0.1, 0.1), max_train=50)["train"]
    assert len(capped10) == 10 and len(capped50) == 50
    assert all(p in capped50 for p in capped10)
    assert 0 <= source_hash("x", 1) < 1 and source_hash("x", 1) == source_hash("x", 1) != source_hash("x", 2)
    with pytest.raises(ValueError):
        split_by_source(pairs, (0.8, 0.3, 0.1))


def test_system_catalog_pairs_on_fake_root(tmp_path):
    for cat, items in {
        "a": {b"": HEADER_JA.encode(), b"Open the file now": "ファイルを今開く".encode(), b"Quit": "終了".encode()},
        "b": {b"": HEADER_JA.encode(), b"Open the file now": "今すぐファイルを開く".encode()},
        "c": {b"": HEADER_JA.encode(), b"Open the file now": "ファイルを今開く".encode(),
              b"Close the window please": "ウィンドウを閉じて".encode()},
    }.items():
        d = tmp_path / "ja" / "LC_MESSAGES"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{cat}.mo").write_bytes(_mo_bytes(items))
    pairs, cats = system_catalog_pairs("ja", root=tmp_path, min_words=3)
    assert [(p["source"], p["target"], p["catalog"]) for p in pairs] == [
        ("Close the window please", "ウィンドウを閉じて", "c"),
        ("Open the file now", "ファイルを今開く", "a"),  # most frequent target (2 of 3)
    ]
    assert [(c["catalog"], c["n_entries"], c["n_pairs"], c["n_selected"]) for c in cats] == [
        ("a", 2, 1, 1), ("b", 1, 1, 0), ("c", 2, 2, 1)]
    assert all(c["package"] is None and c["licence"] is None for c in cats)  # not dpkg-owned
    pairs, cats = system_catalog_pairs("ja", root=tmp_path, exclude=["c"])
    assert [c["catalog"] for c in cats] == ["a", "b"]
    assert pairs[0]["target"] == "ファイルを今開く"  # tie 1:1 → lexicographically smallest
    assert system_catalog_pairs("xx", root=tmp_path) == ([], [])


@pytest.mark.skipif(not Path("/usr/share/locale/ja/LC_MESSAGES").is_dir(), reason="no ja catalogs installed")
def test_system_catalogs_ja():
    pairs, cats = system_catalog_pairs("ja")
    assert len(pairs) > 1000
    assert len({p["source"] for p in pairs}) == len(pairs)
    assert all(len(p["source"].split()) >= 3 and p["target"] for p in pairs)
    assert cats and all({"catalog", "package", "licence"} <= set(c) for c in cats)
