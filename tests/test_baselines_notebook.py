"""Reference baselines on known inputs, and the analysis notebook executed on real tiny-run records."""
from __future__ import annotations

import json
import os

import nbformat

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
    """``make notebook``'s path (papermill, localize.report.notebook.execute) on a log dir holding runs, a
    multirun job, an evaluation-free continual sequence: the executed copy and its HTML are written."""
    from localize.report.notebook import execute

    for adapter, where in (("lora", "runs/lora/t0"), ("full", "multiruns/t0/0-full")):
        cfg = make_cfg(["+locale=ja", "task=ner", f"adapter={adapter}"])
        cfg.paths.output_dir = str(tmp_path / "logs" / where)
        train(cfg)
    from localize.continual.sequence import Sequence
    from test_continual import _cfg

    Sequence(_cfg(tmp_path / "logs" / "continual" / "seq" / "t0", "sequential")).run()  # the continual cells
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the kernel inherits this environment
    nb = nbformat.read(ROOT / "notebooks" / "compare_methods.ipynb", as_version=4)
    n_cells = len(nb.cells)
    # One extra cell reports what the notebook computed (on a copy; the file in notebooks/ is not changed).
    nb.cells.append(nbformat.v4.new_code_cell('import json; print(json.dumps(sorted(set(summary["method"]))))'))
    (tmp_path / "nb").mkdir()
    nbformat.write(nb, tmp_path / "nb" / "compare_methods.ipynb")
    paths = execute(str(tmp_path / "logs"), str(tmp_path / "out"), notebook=tmp_path / "nb" / "compare_methods.ipynb",
                    parameters={"REFERENCE": "lora"})
    done = nbformat.read(paths["notebook"], as_version=4)
    injected = [c for c in done.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and str(tmp_path / "logs") in injected[0].source and "lora" in injected[0].source
    cells = [c for c in done.cells if c not in injected]
    methods = json.loads("".join(o["text"] for o in cells[-1].outputs if o.get("name") == "stdout"))
    assert set(methods) == {"lora", "full"}  # the multirun job is seen too
    images = [o for c in cells[:n_cells] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images  # at least quality_vs_params was plotted and displayed
    text = json.dumps([c.get("outputs", []) for c in cells[:n_cells]])
    assert "1 (sequence, strategy) rows" in text and "## Continual sequences" in text
    assert "Paired tests" in text  # the paired-test section, against the injected REFERENCE
    html = open(paths["html"], encoding="utf-8").read()
    assert html.startswith("<!DOCTYPE html>") and "Compare localization methods" in html
    assert not os.path.exists(tmp_path / "out" / "compare_methods.failed.ipynb")


def test_a_notebook_cell_that_raises_leaves_only_a_failed_copy(tmp_path, capsys):
    """No executed copy that looks complete: the error names the cell and the .failed.ipynb kept; the
    CLI prints one line, and a missing log dir names the fix."""
    import pytest

    from localize.report.notebook import execute, main

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("LOG_DIR = None", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("raise ValueError('no runs here')")]
    nbformat.write(nb, tmp_path / "bad.ipynb")
    (tmp_path / "logs").mkdir()
    with pytest.raises(RuntimeError, match=r"bad: cell \d+ raised ValueError: no runs here"):
        execute(str(tmp_path / "logs"), str(tmp_path / "out"), notebook=tmp_path / "bad.ipynb")
    assert sorted(os.listdir(tmp_path / "out")) == ["bad.failed.ipynb"]
    assert main(["--log-dir", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such folder" in err and "--log-dir <dir>" in err
