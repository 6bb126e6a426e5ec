"""K-fold cross-validation: folds partition the corpus, dev comes from the fold's training part, the
errors name the fix, and a 2-fold run is pooled by the report (each corpus example once)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from hydra.utils import instantiate

from conftest import FAST, NER, compose_cfg
from localize.data.errors import DataError
from localize.data.gettext_pairs import read_po, write_po
from localize.data.ner_readers import read_hironsan
from localize.data.folds import fold_ids
from localize.data.sources import split_examples

SMALL_PO = Path(__file__).parent / "fixtures" / "mt" / "small.po"
MT = [o for o in FAST if not o.startswith("model=")] + [
    "+locale=ja", "task=translation", "model=tiny_causal", "data.split_sizes=[0.8,0.1,0.1]"]


def _positions(pool: list[dict], part: list[dict]) -> list[int]:
    where = {id(ex): i for i, ex in enumerate(pool)}
    return [where[id(ex)] for ex in part]


def _check_partition(n: int, folds: list[dict[str, list[int]]], key=None) -> None:
    """Corpus positions per fold and part. Test folds: pairwise disjoint, union = the corpus; dev ∩ test
    = ∅, dev ∪ train = the other folds; with ``key(position)``, a group never spans two folds or parts."""
    everything = set(range(n))
    tests = [set(f["test"]) for f in folds]
    assert set().union(*tests) == everything
    assert sum(len(t) for t in tests) == n  # pairwise disjoint
    for f, test in zip(folds, tests):
        dev, train = set(f["validation"]), set(f["train"])
        assert dev and train and not dev & test and not train & test and not dev & train
        assert dev | train == everything - test  # dev ⊂ the fold's training part, train is the rest of it
        if key is not None:
            groups = {name: {key(i) for i in part} for name, part in
                      (("train", train), ("validation", dev), ("test", test))}
            assert not (groups["train"] & groups["test"] or groups["validation"] & groups["test"]
                        or groups["train"] & groups["validation"])
    if key is not None:
        of_group = [{key(i) for i in t} for t in tests]
        assert sum(len(g) for g in of_group) == len(set().union(*of_group))  # no group in two test folds


def test_five_folds_partition_the_embedded_ner_corpus():
    pool = read_hironsan()
    folds = [split_examples(pool, (400, 50, 50), seed=1, folds=5, fold=i) for i in range(5)]
    _check_partition(len(pool), [{k: _positions(pool, v) for k, v in f.items()} for f in folds])
    # 100 test sentences per fold; dev keeps split_sizes' train:dev ratio (50/450) of the other 400.
    assert [{k: len(v) for k, v in f.items()} for f in folds] == [{"train": 356, "validation": 44, "test": 100}] * 5
    assert [len(f["validation"]) for f in (split_examples(pool, (400, 50, 50), 1, folds=5, fold=0, dev=d)
                                           for d in (0.25, 30))] == [100, 30]


def test_same_seed_same_folds_other_seed_other_folds():
    pool = read_hironsan()
    assert fold_ids(pool, 5, seed=1) == fold_ids(pool, 5, seed=1)
    assert fold_ids(pool, 5, seed=1) != fold_ids(pool, 5, seed=2)
    a, b = (split_examples(pool, (400, 50, 50), 1, folds=5, fold=3) for _ in range(2))
    assert all(_positions(pool, a[k]) == _positions(pool, b[k]) for k in a)


def test_translation_folds_keep_each_source_in_one_fold(tmp_path):
    # Every English source three more times (other contexts): all copies land in one fold / one part.
    pairs = read_po(SMALL_PO)
    dup = [dict(p, context=f"ctx{i}", target=p["target"] + "!") for i in range(3) for p in pairs[:20]]
    po = tmp_path / "dups.po"
    write_po(pairs + dup, po, lang="ja")
    folds, source = [], {}
    for i in range(5):
        dm = instantiate(compose_cfg(MT + [f"data.path={po}", "data.cv_folds=5", f"data.cv_fold={i}",
                                           "data.max_eval_examples=null"], tmp_path / "run").data)
        splits = dm.splits
        where = dm._pool_index  # id(example) -> position in the pool the datamodule folded
        folds.append({k: [where[id(ex)] for ex in v] for k, v in splits.items()})
        for exs in splits.values():
            for ex in exs:
                assert source.setdefault(where[id(ex)], ex["source"]) == ex["source"]  # same pool every fold
    n = dm.data_info["cv"]["pool"]
    assert n == len(pairs) + len(dup)
    _check_partition(n, folds, key=source.__getitem__)
    assert dm.data_info["cv"]["fold_sizes"] == [len(f["test"]) for f in folds]


def test_the_record_names_the_fold_and_its_test_examples(make_cfg):
    dm = instantiate(make_cfg(NER + ["data.cv_folds=5", "data.cv_fold=2", "seed=1"]).data)
    splits, cv = dm.splits, dm.data_info["cv"]
    assert (cv["folds"], cv["fold"], cv["pool"], cv["fold_sizes"]) == (5, 2, 500, [100] * 5)
    pool = read_hironsan()
    expected = split_examples(pool, (400, 50, 50), 1, folds=5, fold=2)["test"]
    assert [pool[i]["id"] for i in cv["test_index"]] == [ex["id"] for ex in expected] == [ex["id"] for ex in
                                                                                         splits["test"]]
    assert cv["test_n"] == 100 and len(cv["test_sha1"]) == 40
    # The plain split is untouched when cv_folds is null.
    plain = instantiate(make_cfg(NER + ["seed=1"]).data)
    assert [ex["id"] for ex in plain.splits["test"]] == [ex["id"] for ex in
                                                         split_examples(pool, (400, 50, 50), 1)["test"]]
    assert "cv" not in plain.data_info


@pytest.mark.parametrize("bad", ["data.cv_fold=5", "data.cv_fold=-1", "data.cv_fold=null"])
def test_fold_out_of_range_is_one_line_naming_the_key_and_a_fix_that_works(make_cfg, bad):
    cfg = make_cfg(NER + ["data.cv_folds=5", bad])
    with pytest.raises(DataError) as e:
        instantiate(cfg.data).splits
    msg = str(e.value)
    assert "\n" not in msg and "data.cv_fold" in msg and "data.cv_folds=5" in msg
    fix = re.search(r"Fix: (\S+)", msg).group(1)
    assert instantiate(make_cfg(NER + ["data.cv_folds=5", bad, fix]).data).splits["test"]


def test_cv_folds_without_a_pool_or_too_small_is_refused(make_cfg, tmp_path):
    conll = Path(__file__).parent / "fixtures" / "ner" / "small.conll"
    split = make_cfg(NER + [f"+data.path={{train:{conll},test:{conll}}}", "data.cv_folds=2", "data.cv_fold=0"])
    with pytest.raises(DataError, match=r"cross-validation needs one unsplit corpus.*Fix: data\.path="):
        instantiate(split.data).splits
    with pytest.raises(DataError, match=r"data\.cv_folds=1.*Fix: data\.cv_folds=5"):
        instantiate(make_cfg(NER + ["data.cv_folds=1", "data.cv_fold=0"]).data).splits


def test_kfold_sweeps_every_fold_names_the_runs_and_reports():
    plain = compose_cfg(["+locale=ja", "task=ner"], "/tmp/x")
    cfg = compose_cfg(["+cv=kfold", "+locale=ja", "task=ner", "data.cv_folds=3"], "/tmp/x")
    assert cfg.run_name == plain.run_name + f"-cv3f{cfg.data.cv_fold}"
    from localize.config import compose

    hydra = compose(["+cv=kfold", "+locale=ja", "task=ner"], return_hydra_config=True, out_dir="/tmp/x").hydra
    assert hydra.sweeper.params["data.cv_fold"] == "range(5)"
    assert hydra.callbacks.cv_report._target_ == "localize.report.cv.CVReport"


def test_cv_group_is_one_configuration_whatever_the_fold():
    from localize.tracking.record import cv_group

    def group(*overrides: str) -> str:
        record = {"task": "ner", "locale": "ja", "model": "e5_small", "adapter": "lora", "seed": 1,
                  "data": {"cv": {"folds": 5, "pool_sha1": "abc"}}, "overrides": list(overrides)}
        return cv_group(record)

    base = group("+locale=ja", "adapter=lora", "data.cv_fold=0")
    assert base.startswith("ner-ja-e5_small-lora-s1-cv5-")
    assert group("data.cv_fold=3", "adapter=lora", "+locale=ja", "logger=none", "resume=/r", "paths.log_dir=l") == base
    assert group("+locale=ja", "adapter=lora", "data.cv_fold=0", "adapter.lr=1e-3") != base


def test_two_fold_run_is_pooled_in_the_report(tmp_path):
    """Folds 0 and 1 trained in-process; the report pools their out-of-fold predictions: 500 examples,
    each once, and the pooled F1 is seqeval's over the concatenated predictions; then each fold is
    re-tested (``_retest_folds_with_viterbi``)."""
    from localize.report import collect, write_report
    from localize.report.cv import summarize_cv
    from localize.tracking.metrics import span_scores
    from localize.train import train

    fast = [o for o in FAST if "limit_test_batches" not in o]  # every test sentence is predicted
    records = [train(compose_cfg(fast + NER + ["data.cv_folds=2", f"data.cv_fold={i}"], tmp_path / f"fold{i}"))
               for i in range(2)]
    assert records[0]["cv_group"] == records[1]["cv_group"]
    assert [r["data"]["cv"]["fold"] for r in records] == [0, 1]
    table = summarize_cv(collect(str(tmp_path)))
    assert len(table) == 1
    row = table.iloc[0]
    assert (row.pooled_n, row.corpus_n, bool(row.complete), list(row.found)) == (500, 500, True, [0, 1])
    assert row.fold_mean == pytest.approx(sum(r["metrics"]["test/f1"] for r in records) / 2)
    rows = [json.loads(line) for i in range(2) for line in (tmp_path / f"fold{i}" / "test_predictions.jsonl").open()]
    pooled = span_scores([r["gold"] for r in rows], [r["pred"] for r in rows])["f1"]
    assert row.pooled == pytest.approx(pooled) and row.low <= pooled <= row.high
    out = write_report(str(tmp_path))
    text = Path(out["markdown"]).read_text()
    assert "## Cross-validation" in text and "500/500" in text
    assert (tmp_path / "report" / "cv.csv").exists()
    _retest_folds_with_viterbi(tmp_path, records)


def _retest_folds_with_viterbi(tmp_path: Path, records: list[dict]) -> None:
    """localize.evaluate on a fold run tests that fold again (not the plain split, which holds the fold's
    training sentences); re-tests with module.decoding=viterbi pool as their own group, paired with the
    argmax folds on the same examples."""
    from localize.evaluate import evaluate
    from localize.report import collect
    from localize.report.cv import summarize_cv

    def retest(i: int, *extra: str) -> dict:
        cfg = compose_cfg([f"run={tmp_path / f'fold{i}'}", "trainer=cpu", "logger=none", *extra],
                          tmp_path / "evals" / f"fold{i}-{len(extra)}", config_name="evaluate")
        return evaluate(cfg)

    again = retest(0)
    assert again["data"]["cv"]["test_index"] == records[0]["data"]["cv"]["test_index"]
    assert again["metrics"]["test/f1"] == records[0]["metrics"]["test/f1"]
    shutil.rmtree(tmp_path / "evals" / "fold0-0")  # a one-fold group: the pairing below is with the trained folds
    viterbi = [retest(i, "module.decoding=viterbi", "tags=[viterbi]") for i in range(2)]
    assert viterbi[0]["cv_group"] == viterbi[1]["cv_group"] != records[0]["cv_group"]
    assert len(summarize_cv(collect(str(tmp_path / "evals")))) == 1  # the two re-tests: one group
    table = summarize_cv(collect(str(tmp_path)), reference=records[0]["adapter"]).set_index("method")
    row = table.loc[f"{records[0]['adapter']}+viterbi"]
    assert (row.pooled_n, bool(row.complete)) == (500, True) and row.reference == records[0]["adapter"]
    assert not str(row.verdict).startswith("not paired") and 0 < row.p_value <= 1  # the same 500 sentences
    assert row.retest_of == records[0]["adapter"] and row.retest_difference == pytest.approx(row.difference)
    assert table.loc[records[0]["adapter"], "retest_of"] is None  # the trained folds re-test nothing


def _fake_fold(root: Path, adapter: str, fold: int, pool: list[dict], test: list[int], pred,
               tags: tuple = (), overrides: tuple = ()) -> None:
    """A fold's run dir as train writes it (run.json + test_predictions.jsonl), without training."""
    from localize.tracking.record import cv_group

    run = root / "-".join([adapter, *overrides, f"f{fold}"])
    run.mkdir(parents=True)
    cv = {"folds": 2, "fold": fold, "pool": len(pool), "pool_sha1": "p", "test_index": test}
    record = {"run_name": f"{adapter}-f{fold}", "task": "ner", "locale": "ja", "model": "m", "adapter": adapter,
              "seed": 1, "status": "finished", "metrics": {"test/f1": 0.5}, "data": {"cv": cv},
              "tags": list(tags), "overrides": [f"adapter={adapter}", f"data.cv_fold={fold}", *overrides],
              "test_predictions": {"file": "test_predictions.jsonl", "kind": "spans", "options": {}}}
    record["cv_group"] = cv_group(record)
    (run / "run.json").write_text(json.dumps(record))
    rows = [{"index": i, "id": pool[p]["id"], "gold": pool[p]["tags"], "pred": pred(pool[p]["tags"])}
            for i, p in enumerate(test)]
    (run / "test_predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_pooled_groups_are_paired_on_the_same_examples_and_gaps_are_named(tmp_path):
    from localize.report import collect
    from localize.report.cv import summarize_cv

    pool = read_hironsan()[:60]
    ids = fold_ids(pool, 2, seed=1)
    folds = [[i for i, f in enumerate(ids) if f == k] for k in range(2)]
    for fold in range(2):  # "same" copies the gold tags, as "ref" does: identical predictions
        _fake_fold(tmp_path, "ref", fold, pool, folds[fold], list)
        _fake_fold(tmp_path, "same", fold, pool, folds[fold], list)
    _fake_fold(tmp_path, "half", 0, pool, folds[0], lambda tags: ["O"] * len(tags))  # fold 1 missing
    table = summarize_cv(collect(str(tmp_path)), reference="ref").set_index("method")
    assert table.loc["ref", "pooled"] == 1.0 and table.loc["ref", "pooled_n"] == 60 and table.loc["ref", "complete"]
    assert table.loc["same", "p_value"] == 1.0 and table.loc["same", "verdict"].startswith("no significant")
    half = table.loc["half"]
    assert not half.complete and half.pooled_n == 30 and "folds [1] missing" in half.note
    assert half.verdict.startswith("not paired")  # 30 of the 60 examples: no paired test


def test_two_recipes_of_one_adapter_are_two_named_rows(tmp_path):
    """Two CV groups of one adapter (the default and a searched recipe, or fp32 vs bf16) are told apart
    by the tags only one of them carries; the reference matches the plain adapter name."""
    from localize.report import collect
    from localize.report.cv import summarize_cv

    pool = read_hironsan()[:40]
    ids = fold_ids(pool, 2, seed=1)
    for fold in range(2):
        test = [i for i, f in enumerate(ids) if f == fold]
        _fake_fold(tmp_path, "lora", fold, pool, test, list, tags=("cv2",))
        _fake_fold(tmp_path, "lora", fold, pool, test, lambda t: ["O"] * len(t), tags=("cv2", "searched"),
                   overrides=("adapter.lr=0.001",))
    table = summarize_cv(collect(str(tmp_path)), reference="lora").set_index("method")
    assert sorted(table.index) == ["lora", "lora+searched"]
    assert table.loc["lora", "pooled"] == 1.0 and table.loc["lora+searched", "pooled"] == 0.0
    assert table.loc["lora+searched", "reference"] == "lora" and table.loc["lora+searched", "p_value"] < 0.05
