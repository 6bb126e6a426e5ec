"""The benchmark harness: ratios of medians, the roofline arithmetic, and a tiny end-to-end run."""
from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("ner_bench", ROOT / "benchmarks" / "ner_bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def _row(system, tps, f1, adapter="full"):
    return {"system": system, "adapter": adapter, "tokens_per_s": tps, "s_per_epoch": 1000 / tps,
            "peak_rss_mb": 100.0, "test_f1": f1, "epochs": 1, "precision": bench.PRECISION[system]}


def test_roofline_arithmetic():
    got = bench.roofline(1e9, 100, {"fp32": 400, "bf16": 800})  # 1e9 FLOP/token × 100 tok/s = 100 GFLOP/s
    assert got == pytest.approx({"gflop_s": 100, "mfu_fp32": 0.25, "mfu_bf16": 0.125})


def test_summary_uses_medians_and_like_for_like_ratios():
    rows = [_row("localize", t, 0.5) for t in (300, 100, 200)] + [_row("trainer", t, 0.4) for t in (100, 150)]
    rows += [_row("raw", 210, 0.5), _row("localize_bf16", 400, 0.5), _row("trainer_best", 250, 0.5),
             _row("raw_bf16", 500, 0.5)]
    table = {r["system"]: r for r in bench.summarise(rows, {"full": 1e9}, {"fp32": 400, "bf16": 800})}
    assert table["localize"]["tokens_per_s"] == 200  # median, not mean or best
    assert table["trainer"]["tokens_per_s"] == 125
    assert table["localize"]["speed_vs_trainer"] == 200 / 125 == 1.6
    assert table["localize"]["speed_vs_raw"] == 200 / 210
    assert table["localize_bf16"]["speed_vs_trainer_best"] == 400 / 250 == 1.6
    assert table["localize_bf16"]["speed_vs_raw_bf16"] == 400 / 500
    # Only like-for-like ratios: no fp32 row over a bf16 anchor, none on the anchors themselves.
    assert "speed_vs_trainer_best" not in table["localize"] and "speed_vs_trainer" not in table["localize_bf16"]
    assert not any(k.startswith("speed_vs") for s in ("trainer", "trainer_best", "raw", "raw_bf16")
                   for k in table[s])
    assert table["localize"]["gflop_s"] == 200 and table["localize"]["mfu_fp32"] == 0.5  # roofline of the median
    assert table["localize_bf16"]["precision"] == "bf16-mixed" and table["localize"]["precision"] == "32-true"
    md = bench.markdown(list(table.values()), {"argv": [], "date": "d", "epochs": 1, "seed": 1, "repeats": 3,
                                               "machine": "m", "versions": {}, "padding": "0.1", "matmul_n": 2048,
                                               "peaks": {"fp32": 400, "bf16": 800}, "flops_per_token": {"full": 1e9}})
    assert "| full | localize | 32-true | 1 | 200 | 5.0 | 200.0 | 50.0% / 25.0% |" in md
    assert "| full | localize_bf16 | bf16-mixed | 1 | 400 |" in md and md.count("1.60×") == 2
    assert "fp32 400, bf16 800 GFLOP/s" in md and "full 1e+09" in md


@pytest.mark.slow  # ~1 min of subprocesses (4 jobs, each ~10 s of imports); make test-slow, and make bench itself
def test_anchors_run_end_to_end_at_their_precision_on_a_tiny_model(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# kept intro\n<!-- generated -->\nold table\n")
    # One of each code path (fp32 raw is raw_bf16 minus autocast; localize differs from localize_bf16 only in
    # its trainer.precision override); each job is ~10 s of imports and setup.
    systems = ("localize_bf16", "trainer_best", "raw_bf16")
    bench.main(["--adapters", "lora:1", "--systems", ",".join(systems), "--epochs", "1", "--repeats", "1",
                "--matmul-n", "512", "--override=model=tiny_random", "--override=data.split_sizes=[40,10,10]",
                "--results", str(tmp_path / "runs"), "--write-results", str(results)])
    summary = json.loads(next((tmp_path / "runs").rglob("summary.json")).read_text())
    meta, runs = summary["meta"], summary["runs"]
    assert {r["system"] for r in runs} == set(systems)
    assert meta["peaks"]["fp32"] > 0 and meta["peaks"]["bf16"] > 0 and meta["flops_per_token"]["lora"] > 0
    for r in runs:
        assert r["tokens"] > 0 and r["train_s"] > 0 and 0.0 <= r["test_f1"] <= 1.0
        # Read back from what ran (run.json, the Trainer's accelerator), not just echoed from the name.
        assert r["precision"] == ("bf16-mixed" if r["system"].endswith(("_bf16", "_best")) else "32-true")
        assert r["gflop_s"] > 0 and r["mfu_fp32"] > 0 and r["mfu_bf16"] > 0
    # Same features for all (localize's, length-grouped or not): identical non-pad token counts.
    assert len({r["tokens"] for r in runs}) == 1
    table = {r["system"]: r for r in summary["table"]}
    assert {"speed_vs_trainer_best", "speed_vs_raw_bf16"} <= set(table["localize_bf16"])
    text = results.read_text()
    assert text.startswith("# kept intro") and "old table" not in text and "| lora | localize_bf16 | bf16-mixed |" in text


def test_opt_ins_table_gives_each_row_its_ratio_to_its_reference():
    spec = importlib.util.spec_from_file_location("opt_ins", ROOT / "benchmarks" / "opt_ins.py")
    opt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(opt)
    row = lambda name, tps, world=1: {"name": name, "overrides": opt.ROWS[name][0], "precision": "32-true",  # noqa: E731
                                      "world_size": world, "threads": 2 // world, "epoch_s": [30.0, 12.5],
                                      "tokens_per_s": tps, "wall_s": 60.0}
    text = opt.table([row("frozen_emb", 1000), row("compile", 1250), row("ddp_2_ranks", 800, 2),
                      {"name": "full", "failed": True, "wall_s": 5.0}, row("full_sparse_embeddings", 900)])
    lines = {ln.split(" | ")[0].lstrip("| "): ln for ln in text.splitlines()[2:]}
    assert "| 1.25× frozen_emb |" in lines["compile"] and "| 0.80× frozen_emb |" in lines["ddp_2_ranks"]
    assert "| 2 × 1 |" in lines["ddp_2_ranks"] and "30.0 / 12.5" in lines["compile"]
    assert "| failed |" in lines["full"] and "×" not in lines["full_sparse_embeddings"].split(" | ")[6]  # no ratio to a failed row
    mt = opt.table([row("translation_lora", 40) | {"generated_per_s": 12.34}]).splitlines()[2]
    assert mt.split(" | ")[7] == "12.3"


def test_opt_ins_repeats_give_the_median_run_and_every_rounds_figure():
    spec = importlib.util.spec_from_file_location("opt_ins", ROOT / "benchmarks" / "opt_ins.py")
    opt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(opt)
    runs = [{"name": "frozen_emb", "overrides": [], "precision": "bf16-mixed", "world_size": 1, "threads": 2,
             "epoch_s": [e], "tokens_per_s": t, "wall_s": 50.0} for e, t in [(10.0, 900), (12.0, 700), (11.0, 1000)]]
    median = opt.median_row(runs + [{"name": "frozen_emb", "failed": True, "wall_s": 1.0}])
    assert median["tokens_per_s"] == 900 and median["epoch_s"] == [10.0] and median["repeats"] == [900, 700, 1000]
    assert "| 900 (900 / 700 / 1000) |" in opt.table([median])
