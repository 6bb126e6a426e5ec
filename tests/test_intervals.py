"""Bootstrap intervals and paired tests (localize.tracking.intervals), in run records and the report."""
from __future__ import annotations

import csv
import json
import os
import shutil

import numpy as np
import pytest
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2

from conftest import compose_cfg
from localize.tracking.intervals import (TestPredictions, align, example_id, metric_intervals, paired_test,
                                         read_predictions, verdict)
from localize.tracking.metrics import span_scores

SEED = 7


def _ner_rows(n: int = 50, noise: float = 0.15, seed: int = 0, gold: list | None = None) -> list[dict]:
    """``n`` synthetic sentences of 15 words with PER/LOC/ORG entities; predictions lose or break
    each tag with probability ``noise``."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        if gold is None:
            tags: list[str] = []
            while len(tags) < 15:
                if rng.random() < 0.2:
                    t = ("PER", "LOC", "ORG")[rng.integers(3)]
                    tags += [f"B-{t}"] + [f"I-{t}"] * int(rng.integers(0, 3))
                else:
                    tags.append("O")
        else:
            tags = gold[i]
        pred = [t if rng.random() >= noise else ("O" if rng.random() < 0.5 else "I-PER") for t in tags]
        rows.append({"index": i, "id": f"s{i}", "gold": tags, "pred": pred})
    return rows


# ----------------------------------------------------------------------------- the numbers
def test_interval_of_a_hand_computed_case():
    """Two sentences, one entity each, one found: F1 = 2/3. A resample of two sentences is AA
    (F1 1, p 1/4), AB/BA (2/3, p 1/2) or BB (0, p 1/4), so the 95% percentile interval is [0, 1]."""
    rows = [{"index": 0, "id": "a", "gold": ["B-PER", "O"], "pred": ["B-PER", "O"]},
            {"index": 1, "id": "b", "gold": ["O", "B-LOC"], "pred": ["O", "O"]}]
    ci = metric_intervals(TestPredictions("spans", rows), ["f1"], seed=SEED)["test/f1"]
    assert ci["estimate"] == pytest.approx(2 / 3)
    assert (ci["low"], ci["high"]) == (0.0, 1.0)
    assert ci["resamples"] == 1000 and ci["level"] == 0.95 and ci["seed"] == SEED
    # Accuracy of 3 labels, 2 right: the estimate and interval by hand (resample shares 0, 1/3, 2/3, 1).
    labels = [{"index": i, "id": str(i), "gold": g, "pred": p} for i, (g, p) in enumerate(["aa", "bb", "ab"])]
    acc = metric_intervals(TestPredictions("labels", labels), ["accuracy"], seed=SEED)["test/accuracy"]
    assert acc["estimate"] == pytest.approx(2 / 3) and (acc["low"], acc["high"]) == (0.0, 1.0)


def test_interval_equals_a_direct_numpy_bootstrap_with_seqeval():
    """Same seed, same draws: seqeval's F1 on each resampled sentence list gives the same interval."""
    rows = _ner_rows(12)
    resamples = 1000
    idx = np.random.default_rng(SEED).integers(0, len(rows), size=(resamples, len(rows)))
    kw = dict(mode="strict", scheme=IOB2, zero_division=0)
    direct = [f1_score([rows[i]["gold"] for i in draw], [rows[i]["pred"] for i in draw], **kw) for draw in idx]
    expected = np.quantile(direct, [0.025, 0.975])
    ci = metric_intervals(TestPredictions("spans", rows), seed=SEED, resamples=resamples)["test/f1"]
    assert ci["low"] == pytest.approx(expected[0], abs=1e-12)
    assert ci["high"] == pytest.approx(expected[1], abs=1e-12)


def test_full_sample_scores_equal_seqeval_and_are_bracketed():
    rows = _ner_rows(50)
    cis = metric_intervals(TestPredictions("spans", rows))
    scores = span_scores([r["gold"] for r in rows], [r["pred"] for r in rows])
    for name, value in scores.items():
        assert cis[f"test/{name}"]["estimate"] == pytest.approx(value, abs=1e-12), name
    f1 = cis["test/f1"]
    assert f1["low"] <= f1["estimate"] <= f1["high"] and f1["high"] - f1["low"] > 0.01
    assert f1["n"] == 50 and f1["method"] == "bootstrap over examples"


def test_classification_and_translation_estimates_equal_the_run_metrics():
    from sklearn.metrics import f1_score as sk_f1

    from localize.tracking.mt_metrics import translation_scores

    gold, pred = list("aabbccab" * 5), list("abbbcaab" * 5)
    rows = [{"index": i, "id": str(i), "gold": g, "pred": p} for i, (g, p) in enumerate(zip(gold, pred))]
    cis = metric_intervals(TestPredictions("labels", rows))
    assert cis["test/f1_macro"]["estimate"] == pytest.approx(sk_f1(gold, pred, average="macro"))
    assert cis["test/accuracy"]["estimate"] == pytest.approx(np.mean([g == p for g, p in zip(gold, pred)]))

    src = ["Open %s", "Save file", "&Quit", "Close {0}", "Print"] * 4
    ref = ["%s を開く", "ファイルを保存", "終了(&Q)", "{0} を閉じる", "印刷"] * 4
    hyp = ["%s を開く", "ファイル保存", "終了", "{0} 閉じる", "印刷する"] * 4
    rows = [{"index": i, "id": str(i), "source": s, "reference": r, "hypothesis": h}
            for i, (s, r, h) in enumerate(zip(src, ref, hyp))]
    cis = metric_intervals(TestPredictions("translation", rows, {"target_lang": "ja"}))
    expected = translation_scores(src, hyp, ref, "ja")
    for name in ("chrf", "bleu", "exact_match", "placeholder_preservation", "placeholder_preservation_with"):
        assert cis[f"test/{name}"]["estimate"] == pytest.approx(expected[name], abs=1e-9), name
        assert cis[f"test/{name}"]["low"] <= expected[name] <= cis[f"test/{name}"]["high"]


@pytest.mark.parametrize("method", ["bootstrap", "permutation"])
def test_identical_predictions_give_p_1(method):
    a = TestPredictions("spans", _ner_rows(50))
    t = paired_test(a, a, "test/f1", method=method)
    assert t["p_value"] == 1.0 and t["difference"] == 0.0 and (t["low"], t["high"]) == (0.0, 0.0)
    assert verdict(t).startswith("no significant difference (p = 1.00")


@pytest.mark.parametrize("method", ["bootstrap", "permutation"])
def test_a_clearly_better_system_gives_p_below_005(method):
    worse = _ner_rows(50, noise=0.3, seed=1)
    better = _ner_rows(50, noise=0.02, seed=2, gold=[r["gold"] for r in worse])
    t = paired_test(TestPredictions("spans", better), TestPredictions("spans", worse), "f1", method=method)
    assert t["p_value"] < 0.05 and t["difference"] > 0 and t["low"] > 0
    assert t["difference"] == pytest.approx(t["a"] - t["b"])
    assert verdict(t).startswith("better")


def test_a_small_difference_is_not_significant():
    base = _ner_rows(50, noise=0.15, seed=1)
    other = _ner_rows(50, noise=0.15, seed=3, gold=[r["gold"] for r in base])
    t = paired_test(TestPredictions("spans", other), TestPredictions("spans", base), "f1")
    assert t["p_value"] >= 0.05 and t["low"] < 0 < t["high"]


def test_pairs_only_the_same_examples():
    a = TestPredictions("spans", _ner_rows(10))
    b = TestPredictions("spans", [{**r, "id": f"other{r['index']}"} for r in _ner_rows(10)])
    assert "different test examples" in align(a, b)
    with pytest.raises(ValueError, match="cannot pair"):
        paired_test(a, b, "f1")
    shuffled = TestPredictions("spans", list(reversed(a.rows)))  # same ids, another order: paired by id
    assert paired_test(a, shuffled, "f1")["p_value"] == 1.0


def test_several_seeds_pool_seed_and_example_variance():
    gold = [r["gold"] for r in _ner_rows(50)]
    runs = [TestPredictions("spans", _ner_rows(50, noise=nz, seed=s, gold=gold)) for s, nz in ((1, .1), (2, .3))]
    pooled = metric_intervals(runs, ["f1"])["test/f1"]
    single = [metric_intervals(r, ["f1"])["test/f1"] for r in runs]
    assert pooled["estimate"] == pytest.approx(np.mean([s["estimate"] for s in single]))
    assert pooled["runs"] == 2 and pooled["method"].startswith("two-level")
    # Seed variance counts: the pooled interval reaches both runs' scores.
    assert pooled["low"] <= min(s["estimate"] for s in single) and pooled["high"] >= max(s["estimate"] for s in single)


def test_predictions_round_trip(tmp_path):
    from localize.tracking.intervals import write_predictions

    p = TestPredictions("spans", _ner_rows(5))
    write_predictions(str(tmp_path / "p.jsonl"), p)
    back = read_predictions(str(tmp_path / "p.jsonl"), "spans")
    assert back.rows == p.rows
    assert example_id({"tokens": ["a"], "tags": ["O"]}) == example_id({"tags": ["O"], "tokens": ["a"]})


# ----------------------------------------------------------------------------- runs and report
def _lines(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_trained_run_records_intervals_and_predictions(lora_run):
    record = json.load(open(os.path.join(lora_run, "run.json")))
    ci = record["metrics_ci"]["test/f1"]
    assert ci["low"] <= record["metrics"]["test/f1"] + 1e-6 and ci["high"] >= record["metrics"]["test/f1"] - 1e-6
    assert ci["estimate"] == pytest.approx(record["metrics"]["test/f1"], abs=1e-6)  # logged as float32
    assert set(record["metrics_ci"]) <= set(record["metrics"]) and "test/loss" not in record["metrics_ci"]
    meta = record["test_predictions"]
    assert meta["file"] == "test_predictions.jsonl" and meta["kind"] == "spans" and meta["with_ids"]
    rows = _lines(os.path.join(lora_run, meta["file"]))
    assert len(rows) == meta["n"] == record["data"]["sizes"]["test"]
    assert [r["index"] for r in rows] == sorted(r["index"] for r in rows)
    assert all(set(r) == {"index", "id", "gold", "pred"} and len(r["gold"]) == len(r["pred"]) for r in rows)


def test_evaluate_records_intervals_and_logs_the_bounds(lora_run, tmp_path):
    from localize.evaluate import evaluate

    out = tmp_path / "ev"
    rec = evaluate(compose_cfg([f"run={lora_run}", "trainer=cpu", "logger=csv"], out, config_name="evaluate"))
    trained = json.load(open(os.path.join(lora_run, "run.json")))
    assert rec["metrics_ci"]["test/f1"] == trained["metrics_ci"]["test/f1"]
    assert _lines(out / "test_predictions.jsonl") == _lines(os.path.join(lora_run, "test_predictions.jsonl"))
    with open(out / "csv" / "metrics.csv") as f:  # what a logger (W&B, CSV) receives
        logged = {k: v for row in csv.DictReader(f) for k, v in row.items() if v}
    assert float(logged["test/f1_ci_low"]) == pytest.approx(rec["metrics_ci"]["test/f1"]["low"])
    assert float(logged["test/f1_ci_high"]) == pytest.approx(rec["metrics_ci"]["test/f1"]["high"])


@pytest.fixture(scope="module")
def report_runs(lora_run, runs_root):
    """The lora run, a copy of it as a second method, and the baselines on the same split."""
    from localize.baselines import run_baselines

    folder = runs_root / "intervals_report"
    if not folder.exists():
        shutil.copytree(lora_run, folder / "lora", ignore=shutil.ignore_patterns("model", "checkpoints", "wandb"))
        twin = folder / "lora_twin"
        shutil.copytree(folder / "lora", twin)
        record = json.load(open(twin / "run.json"))
        record.update(adapter="full", run_name=record["run_name"].replace("lora", "full"))
        (twin / "run.json").write_text(json.dumps(record))
        run_baselines(compose_cfg(["+locale=ja", "task=ner", "model=tiny_random", "logger=none"],
                                  folder / "baselines"))
    return folder


def test_baselines_record_intervals_and_pair_with_models(report_runs, lora_run):
    base = report_runs / "baselines" / "baseline_dictionary"
    record = json.load(open(base / "run.json"))
    assert record["metrics_ci"]["test/f1"]["estimate"] == pytest.approx(record["metrics"]["test/f1"])
    dictionary = read_predictions(str(base / "test_predictions.jsonl"), "spans")
    model = read_predictions(os.path.join(lora_run, "test_predictions.jsonl"), "spans")
    t = paired_test(dictionary, model, "f1")  # the same test sentences: ids match
    assert t["n"] == len(model.rows) and 0 <= t["p_value"] <= 1


def test_report_shows_intervals_and_paired_tests(report_runs, tmp_path):
    from localize.report import main

    assert main([str(report_runs), "--out", str(tmp_path), "--reference", "full"]) == 0
    md = (tmp_path / "comparison.md").read_text()
    assert "95% CI" in md and "## Paired tests against the reference (full)" in md
    table = md.split("## Paired tests")[1]
    lora = next(line for line in table.splitlines() if line.startswith("| ner | ja |") and "| lora |" in line)
    assert "no significant difference (p = 1.00" in lora  # the twin: identical predictions
    dictionary = next(line for line in table.splitlines() if "| baseline_dictionary |" in line)
    assert "p = " in dictionary and "not paired" not in dictionary
    tests = list(csv.DictReader(open(tmp_path / "paired_tests.csv")))
    assert {t["method"] for t in tests} >= {"lora", "baseline_dictionary", "baseline_majority"}
    summary = list(csv.DictReader(open(tmp_path / "comparison.csv")))
    lora_row = next(r for r in summary if r["method"] == "lora")
    assert float(lora_row["ci_low"]) <= float(lora_row["mean"]) <= float(lora_row["ci_high"])


def _fake_run(folder, adapter: str, seed: int, rows: list[dict], train_n: int | None = None) -> None:
    """A run dir with only what the report reads: run.json (+ metrics_ci) and test_predictions.jsonl."""
    from localize.tracking.intervals import write_predictions

    p = TestPredictions("spans", rows)
    cis = metric_intervals(p)
    record = {"run_name": f"{adapter}-s{seed}", "task": "ner", "locale": "ja", "model": "m", "adapter": adapter,
              "seed": seed, "status": "finished", "metrics": {k: v["estimate"] for k, v in cis.items()},
              "metrics_ci": cis, "test_predictions": p.meta("test_predictions.jsonl")}
    if train_n is not None:
        record["data"] = {"sizes": {"train": train_n}}
    os.makedirs(folder)
    write_predictions(os.path.join(folder, "test_predictions.jsonl"), p)
    with open(os.path.join(folder, "run.json"), "w") as f:
        json.dump(record, f)


def test_report_pairs_by_seed_and_says_when_examples_differ(tmp_path):
    from localize.report import write_report

    gold = [r["gold"] for r in _ner_rows(40)]
    for seed in (1, 2, 3):
        _fake_run(tmp_path / f"full{seed}", "full", seed, _ner_rows(40, noise=0.05, seed=seed, gold=gold))
        _fake_run(tmp_path / f"lora{seed}", "lora", seed, _ner_rows(40, noise=0.4, seed=10 + seed, gold=gold))
    other = [{**r, "id": f"x{r['index']}"} for r in _ner_rows(40, seed=5)]  # another test split
    _fake_run(tmp_path / "prefix1", "prefix", 1, other)
    out = tmp_path / "report"
    write_report(str(tmp_path), str(out))
    tests = {t["method"]: t for t in csv.DictReader(open(out / "paired_tests.csv"))}
    assert tests["lora"]["pairs"] == "3" and float(tests["lora"]["p_value"]) < 0.05
    assert tests["lora"]["verdict"].startswith("worse")
    assert tests["prefix"]["verdict"] == "not paired" and "different test examples" in tests["prefix"]["note"]
    summary = {r["method"]: r for r in csv.DictReader(open(out / "comparison.csv"))}
    assert summary["full"]["ci_method"] == "seeds × examples" and summary["prefix"]["ci_method"] == "examples"


def test_a_reference_run_at_one_training_size_pairs_with_every_size(tmp_path):
    """A few-shot curve's majority prior runs once (the whole training split); the K-shot methods at every
    training size pair with it on the same test examples, and a method at its own size is still compared."""
    from localize.report import write_report

    gold = [r["gold"] for r in _ner_rows(40)]
    _fake_run(tmp_path / "prior", "baseline_majority", 1, _ner_rows(40, noise=0.9, seed=3, gold=gold), train_n=1600)
    for n, noise in ((24, 0.5), (96, 0.05)):
        _fake_run(tmp_path / f"lora{n}", "lora", 1, _ner_rows(40, noise=noise, seed=n, gold=gold), train_n=n)
    out = tmp_path / "report"
    write_report(str(tmp_path), str(out), reference="baseline_majority")
    tests = {(t["method"], t["train_n"]): t for t in csv.DictReader(open(out / "paired_tests.csv"))}
    small, large = tests[("lora", "24")], tests[("lora", "96")]
    assert small["reference"] == large["reference"] == "baseline_majority"
    assert small["pairs"] == large["pairs"] == "1" and "ran at train n 1600 only" in small["note"]
    assert float(large["p_value"]) < 0.05 and large["verdict"].startswith("better")
    assert float(small["difference"]) < float(large["difference"])


def test_archived_records_regenerate_the_same_report_without_the_log_folder(tmp_path):
    """--archive copies the records and predictions (not checkpoints); the page regenerates from it alone."""
    import shutil

    from localize.report import main

    logs, gold = tmp_path / "logs", [r["gold"] for r in _ner_rows(40)]
    for seed in (1, 2):
        _fake_run(logs / f"full{seed}", "full", seed, _ner_rows(40, noise=0.05, seed=seed, gold=gold))
        _fake_run(logs / f"lora{seed}", "lora", seed, _ner_rows(40, noise=0.4, seed=10 + seed, gold=gold))
        os.makedirs(logs / f"full{seed}" / "checkpoints")
        (logs / f"full{seed}" / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    assert main([str(logs), "--out", str(tmp_path / "a"), "--archive", str(tmp_path / "archive")]) == 0
    shutil.rmtree(logs)
    assert main([str(tmp_path / "archive"), "--out", str(tmp_path / "b")]) == 0
    for name in ("comparison.md", "paired_tests.csv"):  # the run list names where each record lies
        before = (tmp_path / "a" / name).read_text().replace(str(logs), "LOGS")
        assert before == (tmp_path / "b" / name).read_text().replace(str(tmp_path / "archive"), "LOGS")
    assert "lora" in (tmp_path / "b" / "paired_tests.csv").read_text()
    assert sorted(os.listdir(tmp_path / "archive" / "full1")) == ["run.json", "test_predictions.jsonl"]
