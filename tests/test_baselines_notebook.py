"""Reference baselines on known inputs, and the analysis notebook executed on real tiny-run records."""
from __future__ import annotations

import json
import os

from conftest import ROOT
from localize.baselines import ner_dictionary, ner_majority, run_baselines
from localize.train import train


def test_dictionary_greedy_longest_match():
    train_ex = [{"tokens": ["東京", "都", "に", "行く"], "tags": ["B-LOC", "I-LOC", "O", "O"]},
                {"tokens": ["東京", "で"], "tags": ["B-ORG", "O"]},
                {"tokens": ["東京", "へ"], "tags": ["B-ORG", "O"]}]
    test_ex = [{"tokens": ["東京", "都", "と", "東京"], "tags": ["B-LOC", "I-LOC", "O", "B-ORG"]}]
    assert ner_dictionary(train_ex, test_ex) == [["B-LOC", "I-LOC", "O", "B-ORG"]]
    assert ner_majority(train_ex, test_ex) == [["O"] * 4]


def test_baselines_recorded_like_runs(make_cfg):
    records = run_baselines(make_cfg(["+locale=ja", "task=ner"]))
    by_name = {r["adapter"]: r for r in records}
    assert by_name["baseline_majority"]["metrics"]["test/f1"] == 0.0
    assert 0.3 < by_name["baseline_dictionary"]["metrics"]["test/f1"] < 0.8  # 0.537 on the seeded split


def test_notebook_runs_on_tiny_records(make_cfg, tmp_path, monkeypatch):
    for adapter in ("lora", "full"):
        cfg = make_cfg(["+locale=ja", "task=ner", f"adapter={adapter}"])
        cfg.paths.output_dir = str(tmp_path / "logs" / "runs" / adapter / "t0")
        train(cfg)
    monkeypatch.setenv("LOCALIZE_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    nb = json.loads((ROOT / "notebooks" / "compare_methods.ipynb").read_text())
    scope: dict = {"__name__": "__main__"}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
            exec(compile(source, "notebook", "exec"), scope)
    table = scope.get("summary", scope.get("table"))
    assert table is not None and set(table["method"]) >= {"lora", "full"}
    assert os.listdir(tmp_path / "logs" / "runs")
