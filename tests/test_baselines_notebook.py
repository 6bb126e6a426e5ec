"""Reference baselines on known inputs, and the analysis notebook executed on real tiny-run records."""
from __future__ import annotations

import json
import os

import nbformat
from nbclient import NotebookClient

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
    from localize.continual.sequence import Sequence
    from test_continual import _cfg

    Sequence(_cfg(tmp_path / "logs" / "continual" / "seq" / "t0", "sequential")).run()  # the continual cells
    # The kernel (ipykernel's "python3", this interpreter) inherits this environment.
    monkeypatch.setenv("LOCALIZE_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(ROOT / "notebooks" / "compare_methods.ipynb", as_version=4)
    n_cells = len(nb.cells)
    # One extra cell reports what the notebook computed; the file on disk is not changed.
    nb.cells.append(nbformat.v4.new_code_cell('import json; print(json.dumps(sorted(set(summary["method"]))))'))
    # Runs every cell as Jupyter does (magics and all); a cell that raises fails the test.
    NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    methods = json.loads("".join(o["text"] for o in nb.cells[-1].outputs if o.get("name") == "stdout"))
    assert set(methods) >= {"lora", "full"}
    images = [o for c in nb.cells[:n_cells] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images  # at least quality_vs_params was plotted and displayed
    continual = "".join(o.get("text", "") for c in nb.cells[:n_cells] for o in c.get("outputs", []))
    assert "1 (sequence, strategy) rows" in continual and "## Continual sequences" in json.dumps(nb.cells[-2].outputs)
    assert os.listdir(tmp_path / "logs" / "runs")
