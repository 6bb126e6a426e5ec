"""The benchmark harness: ratios of medians, and a tiny end-to-end run of every system."""
from __future__ import annotations

import importlib.util
import json

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("ner_bench", ROOT / "benchmarks" / "ner_bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def _row(system, tps, f1, adapter="full"):
    return {"system": system, "adapter": adapter, "tokens_per_s": tps, "s_per_epoch": 1000 / tps,
            "peak_rss_mb": 100.0, "test_f1": f1, "epochs": 1}


def test_summary_uses_medians_and_ratios_against_trainer_and_raw():
    rows = [_row("localize", t, 0.5) for t in (300, 100, 200)] + [_row("trainer", t, 0.4) for t in (100, 150)]
    rows += [_row("raw", 210, 0.5)]
    table = {r["system"]: r for r in bench.summarise(rows)}
    assert table["localize"]["tokens_per_s"] == 200  # median, not mean or best
    assert table["trainer"]["tokens_per_s"] == 125
    assert table["localize"]["speed_vs_trainer"] == 200 / 125
    assert table["localize"]["speed_vs_raw"] == 200 / 210
    assert "speed_vs_trainer" not in table["trainer"]
    md = bench.markdown(bench.summarise(rows), {"argv": [], "date": "d", "epochs": 1, "seed": 1, "repeats": 3,
                                                "machine": "m", "versions": {}, "padding": "0.1"})
    assert "| full | localize | 1 | 200 |" in md and "1.60×" in md


def test_every_system_runs_end_to_end_on_a_tiny_model(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# kept intro\n<!-- generated -->\nold table\n")
    bench.main(["--adapters", "lora:1", "--systems", "localize,trainer,raw", "--epochs", "1", "--repeats", "1",
                "--override=model=tiny_random", "--override=data.split_sizes=[40,10,10]",
                "--results", str(tmp_path / "runs"), "--write-results", str(results)])
    summary = json.loads(next((tmp_path / "runs").rglob("summary.json")).read_text())
    systems = {r["system"] for r in summary["runs"]}
    assert systems == {"localize", "trainer", "raw"}
    for r in summary["runs"]:
        assert r["tokens"] > 0 and r["train_s"] > 0 and 0.0 <= r["test_f1"] <= 1.0
    # Same features for all three: identical non-pad token counts.
    assert len({r["tokens"] for r in summary["runs"]}) == 1
    text = results.read_text()
    assert text.startswith("# kept intro") and "old table" not in text and "| lora | localize |" in text
