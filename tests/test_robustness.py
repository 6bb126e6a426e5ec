"""Robustness evaluation (``localize.evaluate run=<dir> +perturb=<suite>``): perturbed test copies keep
their examples and labels aligned, each is scored and paired with the clean test, and the clean record
stays what a plain evaluation writes."""
from __future__ import annotations

import json
import os

import pytest

from localize.config import compose
from localize.data.augment import perturb
from localize.data.errors import DataError
from localize.robustness import perturbed_predictions
from localize.tracking.intervals import paired_test, run_predictions
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
        # the perturbed predictions are kept, paired to the clean ones by id, and rescore to the recorded F1
        kept = perturbed_predictions(str(tmp_path / "noisy"), p)
        assert kept is not None and len(kept.rows) == 50 and all("id" in r for r in kept.rows)
        assert kept.intervals(metrics=["test/f1"])["test/f1"]["estimate"] == pytest.approx(p["metrics"]["test/f1"])
        assert paired_test(kept, run_predictions(str(tmp_path / "noisy")), "test/f1")["n"] == 50
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


def test_the_robustness_table_pools_seeds_and_pairs_methods_on_the_perturbed_sentences(train_run, tmp_path):
    """experiments/robustness/table.py: two methods, each scored on the noise suite; the drop is the
    model's own clean-minus-perturbed, and the other method is paired with the reference per condition."""
    import importlib.util
    import shutil

    from localize.config import CONF_DIR
    from localize.evaluate import evaluate

    spec = importlib.util.spec_from_file_location("table", os.path.join(os.path.dirname(CONF_DIR), "experiments",
                                                                        "robustness", "table.py"))
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    exp = tmp_path / "exp"
    plain = ["adapter=full_frozen_emb"]  # named runs of their own: "full" is trained by other tests with adapter=full
    runs = {"plain": train_run("robust_plain", plain),
            "fgm": train_run("robust_fgm", plain + ["+adversarial=fgm", "tags=[fgm]"])}
    for name, run in runs.items():
        shutil.copytree(run, exp / "train" / name)
    assert table.main([str(exp), "--pending"]) == 0
    pending = table.scored(str(exp))[1]
    assert sorted(os.path.basename(p) for p in pending) == ["fgm", "plain"]
    for name in runs:
        evaluate(compose([f"run={exp / 'train' / name}", "logger=none", "trainer=cpu", "+perturb=noise"], "evaluate",
                         out_dir=str(exp / "evals" / name)))
    groups, pending, metric = table.scored(str(exp))
    assert pending == [] and metric == "test/f1" and sorted(groups) == ["full_frozen_emb", "full_frozen_emb+fgm"]
    assert table.main([str(exp), "--out", str(tmp_path / "out"), "--reference", "full_frozen_emb"]) == 0
    rows = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(r["method"], r["condition"]) for r in rows] == [
        (m, c) for m in ("full_frozen_emb", "full_frozen_emb+fgm") for c in ("clean", "typos", "punctuation")]
    plain = {r["condition"]: r for r in rows if r["method"] == "full_frozen_emb"}
    assert "vs_reference" not in plain["clean"] and "drop" not in plain["clean"]
    typos = plain["typos"]
    assert typos["drop"]["difference"] == pytest.approx(plain["clean"]["ci"]["estimate"] - typos["ci"]["estimate"])
    fgm = {r["condition"]: r for r in rows if r["method"] == "full_frozen_emb+fgm"}
    assert fgm["typos"]["vs_reference"]["n"] == 50
    assert fgm["typos"]["vs_reference"]["difference"] == pytest.approx(
        fgm["typos"]["ci"]["estimate"] - typos["ci"]["estimate"])
    with pytest.raises(SystemExit, match="--reference NAME"):
        table.main([str(exp), "--out", str(tmp_path / "out2"), "--reference", "nope"])
