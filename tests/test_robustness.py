"""Robustness evaluation (``localize.evaluate run=<dir> +perturb=<suite>``): perturbed test copies keep
their examples and labels aligned, each is scored and paired with the clean test, and the clean record
stays what a plain evaluation writes."""
from __future__ import annotations

import json

import pytest

from localize.config import compose
from localize.data.augment import perturb
from localize.data.errors import DataError
from localize.utils import build

from conftest import FAST, NER


def test_a_perturbed_test_split_keeps_ids_order_and_aligned_tags(tmp_path):
    test = build(compose(FAST + NER, out_dir=str(tmp_path)).data).splits["test"]
    for ops in (["typos"], ["punctuation"], ["typos", "punctuation"]):
        out, info = perturb(test, ops, 42, {"code": "ja"}, "NFKC")
        assert [ex["id"] for ex in out] == [ex["id"] for ex in test]
        assert all(len(a["tokens"]) == len(a["tags"]) for a in out)
        assert 0 < info["changed"] <= len(test)
        if ops == ["typos"]:  # typos edit words, never tags
            assert all(a["tags"] == b["tags"] for a, b in zip(out, test))
        assert perturb(test, ops, 42, {"code": "ja"}, "NFKC")[0] == out  # seeded


def test_evaluate_with_a_suite_records_the_drop_per_perturbation(train_run, tmp_path):
    from localize.evaluate import evaluate

    run = train_run("full", [])
    plain = evaluate(compose([f"run={run}", "logger=none", "trainer=cpu"], "evaluate", out_dir=str(tmp_path / "plain")))
    rec = evaluate(compose([f"run={run}", "logger=none", "trainer=cpu", "+perturb=noise"], "evaluate",
                           out_dir=str(tmp_path / "noisy")))
    rob = rec["robustness"]
    assert rob["suite"] == "noise" and [p["operation"] for p in rob["perturbations"]] == ["typos", "punctuation"]
    assert rec["metrics"] == plain["metrics"]  # the clean scores are the plain evaluation's
    for p in rob["perturbations"]:
        assert p["changed"] > 0 and p["examples"] == 50
        assert p["drop"] == pytest.approx(rob["clean"] - p["metrics"]["test/f1"])
        assert p["paired_vs_clean"]["pairs"] == 1 and p["paired_vs_clean"]["n"] == 50
    clean_rows = (tmp_path / "plain" / "test_predictions.jsonl").read_text()
    assert (tmp_path / "noisy" / "test_predictions.jsonl").read_text() == clean_rows  # the clean predictions
    assert json.loads((tmp_path / "noisy" / "run.json").read_text())["robustness"] == json.loads(json.dumps(rob))


def test_a_suite_the_locale_cannot_take_names_the_fix(train_run, tmp_path):
    from localize.evaluate import evaluate

    cfg = compose([f"run={train_run('full', [])}", "logger=none", "trainer=cpu", "+perturb=zh"], "evaluate",
                  out_dir=str(tmp_path))
    with pytest.raises(DataError, match="locale ja has no script variant"):
        evaluate(cfg)
    assert not (tmp_path / "run.json").exists()  # no record that looks valid
