"""Active learning (localize.select, localize.data.pool): acquisition scores on known inputs, a seeded and
deterministic selection from a trained tiny run, and the selected ids read back as the training subset."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from localize.config import compose
from localize.data.errors import DataError
from localize.data.pool import read_pool
from localize.data.stages import write_examples
from localize.select import entropy, k_center, margin, select, uncertainty_scores
from localize.utils import build

from conftest import FAST, NER


# ----------------------------------------------------------------------------- scores
def test_entropy_and_margin_on_known_distributions():
    assert entropy(np.full(4, 0.25)) == pytest.approx(math.log(4))
    assert entropy(np.array([1.0, 0.0])) == pytest.approx(0.0, abs=1e-9)
    assert margin(np.array([0.5, 0.3, 0.2])) == pytest.approx(0.8)
    assert margin(np.array([0.5, 0.5])) == pytest.approx(1.0)
    words = np.array([[0.5, 0.5], [1.0, 0.0], [0.9, 0.1]])  # a 3-word sentence
    h = [math.log(2), 0.0, -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))]
    assert uncertainty_scores([words], "entropy", "sum")[0] == pytest.approx(sum(h), rel=1e-6)
    assert uncertainty_scores([words], "entropy", "max")[0] == pytest.approx(math.log(2), rel=1e-6)
    assert uncertainty_scores([words], "margin", "mean")[0] == pytest.approx((1.0 + 0.0 + 0.2) / 3)
    assert uncertainty_scores([np.array([0.6, 0.4])], "margin")[0] == pytest.approx(0.8)  # one label per text


def test_k_center_picks_the_farthest_point_each_time():
    pts = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [0.0, 5.0], [10.0, 0.2]])
    order = k_center(pts, 5, seed=0)
    assert sorted(order) == list(range(5)) and order == k_center(pts, 5, seed=0)
    # From any start, the first three picks cover the three clusters.
    for seed in range(6):
        first3 = k_center(pts, 3, seed)
        clusters = {0 if p in (0, 1) else 1 if p in (2, 4) else 2 for p in first3}
        assert clusters == {0, 1, 2}


# ----------------------------------------------------------------------------- pools
def test_pools_read_text_lines_text_records_and_tokens(tmp_path):
    (tmp_path / "p.txt").write_text("東京\n\n大阪に行く\n", encoding="utf-8")
    assert read_pool(str(tmp_path / "p.txt")) == [{"id": "p.txt:1", "text": "東京"}, {"id": "p.txt:3", "text": "大阪に行く"}]
    (tmp_path / "p.jsonl").write_text('{"text": "a b", "label": "x"}\n{"id": 7, "tokens": ["c", "d"], "tags": ["O", "O"]}\n')
    assert read_pool(str(tmp_path / "p.jsonl")) == [{"id": "p.jsonl:1", "text": "a b"}, {"id": "7", "tokens": ["c", "d"]}]


@pytest.mark.parametrize("content, name, match", [
    ('{"words": ["a"]}\n', "p.jsonl", 'needs "text"'),
    ("not json\n", "p.jsonl", r"p.jsonl:1: invalid JSON .*Fix: write one JSON object per line"),
    ("a,b\n", "p.csv", "unknown pool form"),
    ('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n', "p.jsonl", "ids repeat"),
])
def test_a_bad_pool_is_one_error_naming_the_fix(tmp_path, content, name, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=match) as e:
        read_pool(str(tmp_path / name))
    assert "Fix:" in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def pool_setup(train_run, tmp_path_factory):
    run = train_run("full", [])
    root = tmp_path_factory.mktemp("select")
    train = build(compose(FAST + NER, out_dir=str(root)).data).splits["train"]
    write_examples(str(root / "pool.jsonl"), train[:80])
    return run, root, train


def _select(run, root, out, **kw):
    args = {"n": 10, "acquisition": "entropy", "seed": 42, **kw}
    return select(compose([f"run={run}", f"pool={root / 'pool.jsonl'}"] + [f"{k}={v}" for k, v in args.items()],
                          "select", out_dir=str(root / out)))


def test_selection_is_deterministic_per_seed_and_ranks_the_most_uncertain_first(pool_setup):
    run, root, train = pool_setup
    a, b = _select(run, root, "e1"), _select(run, root, "e2")
    assert a["selected"] == b["selected"] and len(a["selected"]) == 10
    rows = [json.loads(x) for x in (root / "e1" / "selected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == a["selected"] and [r["rank"] for r in rows] == list(range(1, 11))
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert a["score_mean_selected"] > a["score_mean_pool"]
    assert rows[0]["tokens"] == next(ex["tokens"] for ex in train if ex["id"] == rows[0]["id"])
    r1, r2 = _select(run, root, "r1", acquisition="random", seed=1), _select(run, root, "r2", acquisition="random", seed=2)
    assert r1["selected"] != r2["selected"] and r1["selected"] == _select(run, root, "r3", acquisition="random", seed=1)["selected"]
    d = _select(run, root, "d1", acquisition="diverse")
    assert len(set(d["selected"])) == 10 and d["selected"] == _select(run, root, "d2", acquisition="diverse")["selected"]


def test_the_selected_ids_train_on_exactly_those_sentences(pool_setup):
    run, root, train = pool_setup
    rec = _select(run, root, "m1", acquisition="margin")
    dm = build(compose(FAST + NER + [f"data.train_ids={root / 'm1' / 'selected.jsonl'}"], out_dir=str(root)).data)
    assert sorted(ex["id"] for ex in dm.splits["train"]) == sorted(rec["selected"])
    assert dm.data_info["train_ids"]["kept"] == 10
    assert dm.label_names == build(compose(FAST + NER, out_dir=str(root)).data).label_names


def test_an_id_not_in_train_names_the_fix(tmp_path):
    (tmp_path / "ids.txt").write_text("no-such-sentence\n")
    with pytest.raises(DataError, match="1 of its 1 ids are not in the training split. Fix: select from"):
        build(compose(FAST + NER + [f"data.train_ids={tmp_path / 'ids.txt'}"], out_dir=str(tmp_path)).data).splits


@pytest.mark.parametrize("args, match", [
    (["n=0"], "n=0: the number of texts to select is a positive integer. Fix: n=100"),
    (["n=100000"], "n=100000 but pool=.* holds 80 texts. Fix: n=80"),
    (["acquisition=bald"], "acquisition='bald' is not one of .*Fix: acquisition=entropy"),
])
def test_bad_selection_settings_name_the_fix(pool_setup, args, match):
    run, root, _ = pool_setup
    cfg = compose([f"run={run}", f"pool={root / 'pool.jsonl'}", *args], "select", out_dir=str(root / "bad"))
    with pytest.raises((ValueError, DataError), match=match):
        select(cfg)
    assert not (root / "bad" / "selected.jsonl").exists()  # nothing half-written
