"""Placeholder extraction/preservation and BLEU/chrF wrappers."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from localize.tracking.mt_metrics import (bleu_tokenizer, placeholder_preservation,
                                          placeholder_preservation_items, placeholders,
                                          placeholders_preserved, translation_scores)


@pytest.mark.parametrize("text, expected", [
    ("Delete %d files from %(folder)s?", {"%d": 1, "%(folder)s": 1}),
    ("{0} of {1}", {"{0}": 1, "{1}": 1}),
    ("&Open", {"&": 1}),
    ("<b>Bold</b>", {"<b>": 1, "</b>": 1}),
    ("50% done, 100%% sure", {}),                       # no "% d", %% is a literal percent
    ("%1$s and %2$s, %5.2f %lu %'d %<PRIu64> %-10s %.*s",
     {"%1$s": 1, "%2$s": 1, "%5.2f": 1, "%lu": 1, "%'d": 1, "%<PRIu64>": 1, "%-10s": 1, "%.*s": 1}),
    ("%s and %s", {"%s": 2}),
    ("Copy %1 to %2", {"%1": 1, "%2": 1}),
    ("{} {name} {0:.2f} {name!r} {{literal}}", {"{}": 1, "{name}": 1, "{0:.2f}": 1, "{name!r}": 1}),
    ("Tom &amp; Jerry && co &#160;&#x2014;", {"&amp;": 1, "&#160;": 1, "&#x2014;": 1}),
    ('<a href="https://example.org">link</a><br/><br />', {"<a>": 1, "</a>": 1, "<br/>": 2}),
    ("Usage: cp <source> <dest>", {}),                 # CLI syntax, not markup
    ("$HOME or ${XDG_DATA_HOME}", {"$HOME": 1, "${XDG_DATA_HOME}": 1}),
    ("開く(&O)", {"&": 1}),
    ("Plain text.", {}),
])
def test_placeholders(text, expected):
    assert placeholders(text) == Counter(expected)


def test_gtk_underscore_accelerators_are_optional():
    assert placeholders("Save _As") == Counter()
    assert placeholders("Save _As", accelerators="_") == Counter({"_": 1})
    assert placeholders("E_xit", accelerators="_") == Counter({"_": 1})
    assert placeholders("LC_ALL snake_case __init__ %s_%d", accelerators="_") == Counter({"%s": 1, "%d": 1})
    assert placeholders("&Open _File", accelerators=None) == Counter()
    assert placeholders("&Open _File", accelerators="&_") == Counter({"&": 1, "_": 1})
    assert placeholders("<b>x</b> <foo>", tags="any") == Counter({"<b>": 1, "</b>": 1, "<foo>": 1})
    assert placeholders("<b>x</b>", tags="none") == Counter()


def test_preservation():
    sources = ["Delete %d files from %(folder)s?", "{0} of {1}", "&Open", "<b>Bold</b>", "No placeholders",
               "%s and %s"]
    outputs = ["%(folder)s から %d 個のファイルを削除しますか?",  # reordered: fine
               "{1} 中 {0}",
               "開く",                                           # accelerator lost
               "<b>太字",                                        # closing tag lost
               "プレースホルダーなし",
               "%s と"]                                          # one %s of two lost
    items = placeholder_preservation_items(sources, outputs)
    assert items == [True, True, False, False, True, False]
    assert placeholder_preservation(sources, outputs) == pytest.approx(3 / 6)
    assert placeholder_preservation(sources, outputs, only_with=True) == pytest.approx(2 / 5)
    assert placeholder_preservation(sources, outputs, accelerators=None) == pytest.approx(4 / 6)
    assert placeholders_preserved("%s", "%s %s")  # extra placeholders are not penalised
    assert math.isnan(placeholder_preservation(["a"], ["b"], only_with=True))
    with pytest.raises(ValueError, match="1 sources but 0 outputs"):
        placeholder_preservation_items(["a"], [])


def test_bleu_tokenizer_choice():
    assert bleu_tokenizer("ja") in ("ja-mecab", "char")
    assert bleu_tokenizer("zh_CN") == bleu_tokenizer("zh-TW") == "zh"
    assert bleu_tokenizer("th") == "char"
    assert bleu_tokenizer("de") == bleu_tokenizer("es") == bleu_tokenizer("pt_BR") == "13a"


@pytest.mark.parametrize("lang, refs", [
    ("de", ["Die aktuelle Datei wird jetzt gespeichert", "Alle geöffneten Fenster werden geschlossen"]),
    ("ja", ["現在のファイルを今すぐ保存します", "開いているすべてのウィンドウを閉じます"]),
    ("zh_CN", ["现在保存当前的文件", "关闭所有打开的窗口"]),
])
def test_identical_output_scores_100(lang, refs):
    srcs = ["Save the current file now", "Close all open windows"]
    s = translation_scores(srcs, refs, refs, lang)
    assert s["bleu"] == pytest.approx(100.0) and s["chrf"] == pytest.approx(100.0)
    assert s["exact_match"] == 1.0 and s["placeholder_preservation"] == 1.0
    assert s["bleu_tokenize"] == bleu_tokenizer(lang) and s["n"] == 2
    assert f"tok:{s['bleu_tokenize']}" in s["bleu_signature"]


def test_partial_scores():
    srcs = ["Open %s now", "Close the window"]
    refs = ["Öffne jetzt die Datei %s", "Schließe das Fenster"]
    hyps = ["Öffne jetzt die Datei", "Schließe das Fenster"]
    s = translation_scores(srcs, hyps, refs, "de")
    # chrF by hand (sacrebleu's default: character 1..6-grams, spaces dropped, beta 2): every hyp n-gram
    # is in its ref (precision 1); refs hold 20 + 18 characters, hyps 18 + 18, so order n has recall
    # (38 - 2n) / (40 - 2n); chrF = 100 (1 + 4) P R / (4 P + R) with R averaged over the 6 orders.
    recall = sum((38 - 2 * n) / (40 - 2 * n) for n in range(1, 7)) / 6
    assert s["chrf"] == pytest.approx(100 * 5 * recall / (4 + recall), abs=1e-9)  # 95.04
    assert s["exact_match"] == 0.5
    assert s["placeholder_preservation"] == 0.5
    assert s["placeholder_preservation_with"] == 0.0 and s["n_with_placeholders"] == 1
    # BLEU by hand: 13a splits "%s" into "% s", so refs have 6 + 3 tokens, hyps 4 + 3; every hyp
    # n-gram matches (precisions 7/7, 5/5, 3/3, 1/1), only the brevity penalty exp(1 - 9/7) bites.
    assert s["bleu"] == pytest.approx(100 * math.exp(1 - 9 / 7), abs=1e-6)
    s_none = translation_scores(srcs, ["x", "y"], refs, "de")
    assert s_none["bleu"] == 0.0 and s_none["exact_match"] == 0.0
