"""Tests for localize.report on fake run dirs with known numbers."""

import csv
import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from localize.report import (
    collect,
    learning_curve,
    main,
    summarize,
    wandb_run_to_record,
    write_report,
)

# (adapter, seed, test/f1, trainable, stored_mb, s_per_epoch): lora f1 0.5 and 0.7 -> mean 0.6,
# sample std (ddof=1) sqrt(((0.5-0.6)^2 + (0.7-0.6)^2) / 1) = 0.141421...
RUNS = [("lora", 1, 0.5, 1_000, 0.5, 2.0), ("lora", 2, 0.7, 1_000, 0.5, 4.0),
        ("full", 1, 0.8, 100_000, 40.0, 10.0), ("baseline_zero_shot", 1, 0.1, 0, 0.0, 0.0)]


def make_run(root, adapter, seed, f1, trainable, stored, s_epoch, finished=True, multirun=False):
    name = f"ner-ja-tiny-{adapter}-s{seed}"
    run_dir = root / ("multiruns/2026-01-01_00-00-00" if multirun else f"runs/{name}") / (
        f"{seed}-{name}" if multirun else "2026-01-01_00-00-00")
    (run_dir / "csv").mkdir(parents=True)
    epochs = 2
    with open(run_dir / "csv" / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "train/loss", "val/f1", "val/loss", "test/f1"])
        for e in range(epochs):
            w.writerow([e, 10 * e + 5, 1.0, "", "", ""])
            w.writerow([e, 10 * e + 9, "", f1 * (e + 1) / epochs, 0.5, ""])  # val/f1 reaches f1
        w.writerow([epochs, 20, "", "", "", f1])
    if finished:
        record = {
            "run_name": name, "task": "ner", "locale": "ja", "model": "tiny", "adapter": adapter,
            "seed": seed, "tags": [], "metrics": {"test/f1": f1, "val/f1_best": f1, "test/accuracy": 0.9},
            "params": {"total": 100_000, "trainable": trainable, "trainable_share": trainable / 100_000},
            "storage": {"stored_mb": stored, "full_model_mb": 40.0},
            "perf": {"epochs": epochs, "s_per_epoch": s_epoch, "train_tokens_per_s": 1000.0,
                     "peak_rss_mb": 700.0, "wall_s": 30.0},
            "wandb_id": None, "config": {},
        }
        (run_dir / "run.json").write_text(json.dumps(record))
    return run_dir


@pytest.fixture()
def logs(tmp_path):
    root = tmp_path / "logs"
    for i, run in enumerate(RUNS):
        make_run(root, *run, multirun=i == 1)  # one run in a multirun layout
    make_run(root, "lora", 3, 0.99, 1_000, 0.5, 2.0, finished=False)  # crashed: no run.json
    return root


def test_collect_skips_unfinished(logs):
    df = collect(str(logs))
    assert len(df) == 4
    assert 3 not in set(df["seed"])  # the crashed run's numbers never count
    assert len(df.attrs["skipped"]) == 1 and df.attrs["skipped"][0].endswith("ner-ja-tiny-lora-s3/2026-01-01_00-00-00")
    assert set(df["adapter"]) == {"lora", "full", "baseline_zero_shot"}
    assert df.loc[df["adapter"] == "full", "train_s"].item() == 20.0  # s/epoch x epochs


def test_collect_finds_baselines_inside_a_run_dir(tmp_path):
    """`localize.baselines` writes <run dir>/baseline_<name>/run.json next to Hydra's files: the
    records count, and the parent (no run.json of its own) is not reported as crashed."""
    import shutil

    parent = make_run(tmp_path, "lora", 9, 0.3, 1_000, 0.5, 2.0, finished=False)
    (parent / ".hydra").mkdir()
    for name in ("dictionary", "majority"):
        shutil.copytree(make_run(tmp_path / name, f"baseline_{name}", 9, 0.4, 0, 0.0, 0.0), parent / f"baseline_{name}")
        shutil.rmtree(tmp_path / name)
    df = collect(str(tmp_path))
    assert sorted(df["adapter"]) == ["baseline_dictionary", "baseline_majority"]
    assert df.attrs["skipped"] == []


def test_summarize_mean_and_sample_std(logs):
    summary = summarize(collect(str(logs)))
    lora = summary[summary["method"] == "lora"].iloc[0]
    assert lora["n"] == 2 and lora["seeds"] == [1, 2] and lora["metric"] == "test/f1"
    assert lora["mean"] == pytest.approx(0.6)
    assert lora["std"] == pytest.approx(math.sqrt(0.02), abs=1e-12)  # sample std (ddof=1) = 0.1414
    assert lora["s_per_epoch"] == pytest.approx(3.0) and lora["trainable_share"] == pytest.approx(0.01)
    assert math.isnan(summary[summary["method"] == "full"].iloc[0]["std"])  # one seed: no spread
    assert list(summary["method"]) == ["full", "lora", "baseline_zero_shot"]  # best first
    assert summarize(collect(str(logs)), metric="test/accuracy")["mean"].tolist() == pytest.approx([0.9] * 3)


def test_write_report_files(logs, tmp_path):
    out = tmp_path / "out"
    paths = write_report(str(logs), str(out))
    assert paths["runs"] == 4 and paths["skipped"] == 1
    md = (out / "comparison.md").read_text()
    table, runs = md.split("## Runs")
    rows = [line for line in table.splitlines() if line.startswith("| ") and "method" not in line]
    assert len(rows) == 3
    assert len([line for line in runs.splitlines() if "| finished |" in line]) == 4  # every run's status
    assert "| lora | tiny | ja | ner | n/a | 1,2 | 2 | test/f1 | 0.6000 ± 0.1414 |" in md
    assert "baseline_zero_shot" in md and "1 unfinished" in md
    table = pd.read_csv(out / "comparison.csv")
    assert table["method"].tolist() == ["full", "lora", "baseline_zero_shot"]
    assert table.loc[1, "mean"] == pytest.approx(0.6) and table.loc[1, "std"] == pytest.approx(0.141421356)
    names = {p.split("/")[-1] for p in paths["plots"]}
    assert names == {"quality_vs_params.png", "quality_vs_time.png", "quality_vs_storage.png", "learning_curves.png"}
    for p in paths["plots"]:
        data = open(p, "rb").read()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]  # atomic writes left no temp files


def test_learning_curve_per_epoch(logs):
    run_dir = next(logs.glob("runs/ner-ja-tiny-full-s1/*"))
    curve = learning_curve(str(run_dir / "csv" / "metrics.csv"), "val/f1")
    assert curve.to_dict() == {0: pytest.approx(0.4), 1: pytest.approx(0.8)}


def test_cli_default_out(logs, capsys):
    assert main([str(logs)]) == 0
    assert (logs / "report" / "comparison.md").exists()
    assert "4 finished runs, 1 unfinished" in capsys.readouterr().out
    assert main([str(logs)]) == 0  # the report folder itself is not mistaken for a run dir
    assert "1 unfinished" in capsys.readouterr().out


def test_wandb_run_to_record():
    run = SimpleNamespace(
        id="abc123", name="ner-ja-tiny-lora-s1", state="finished", tags=["model:tiny", "locale:ja", "adapter:lora", "mine"],
        config={"task": {"name": "ner"}, "locale": {"code": "ja"}, "model": {"name": "tiny"},
                "adapter": {"name": "lora"}, "seed": 1},
        summary={"test/f1": 0.5, "val/f1_best": 0.6, "params/trainable_share": 0.01, "storage/stored_mb": 0.5,
                 "perf/s_per_epoch": 2.0, "perf/epochs": 3, "_runtime": 5, "_wandb": {"runtime": 5}},
    )
    rec = wandb_run_to_record(run)
    assert (rec["task"], rec["locale"], rec["model"], rec["adapter"], rec["seed"]) == ("ner", "ja", "tiny", "lora", 1)
    assert rec["metrics"] == {"test/f1": 0.5, "val/f1_best": 0.6}
    assert rec["params"] == {"trainable_share": 0.01} and rec["perf"] == {"s_per_epoch": 2.0, "epochs": 3}
    assert rec["tags"] == ["mine"] and rec["wandb_id"] == "abc123"
    flat = SimpleNamespace(**{**vars(run), "config": {"adapter.name": "prefix", "task/name": "ner"}})
    assert wandb_run_to_record(flat)["adapter"] == "prefix" and wandb_run_to_record(flat)["locale"] == "ja"


def test_wandb_offline_fails_clearly(logs, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main([str(logs), "--wandb-project", "me/proj"]) == 1
    err = capsys.readouterr().err
    assert "cannot read W&B project 'me/proj'" in err and "Traceback" not in err


def test_low_resource_curve_has_train_size_column_and_plot(tmp_path):
    # (adapter, train size, test F1): F1 grows with data; lora below full at each size.
    for i, (adapter, n, f1) in enumerate([("full", 50, 0.1), ("full", 400, 0.6), ("lora", 50, 0.0), ("lora", 400, 0.4)]):
        run_dir = make_run(tmp_path / f"r{i}", adapter, 1, f1, 1_000, 0.5, 2.0)
        record = json.loads((run_dir / "run.json").read_text())
        record["data"] = {"sizes": {"train": n, "validation": 50, "test": 50}}
        (run_dir / "run.json").write_text(json.dumps(record))
    df = collect(str(tmp_path))
    summary = summarize(df)
    assert list(zip(summary["method"], summary["train_n"])) == [("full", 400), ("lora", 400), ("full", 50), ("lora", 50)]
    out = tmp_path / "report"
    write_report(str(tmp_path), str(out))
    table = (out / "comparison.md").read_text().splitlines()
    assert "train n" in table[0] and table[2].startswith("| full | tiny | ja | ner | 400 |")
    assert (out / "quality_vs_train_size.png").stat().st_size > 1000


def test_unknown_metric_lists_the_available_ones_and_the_fix_works(logs, capsys):
    assert main([str(logs), "--metric", "test/bleu", "--out", str(logs / "r1")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "test/bleu" in err[0] and "available: test/accuracy, test/f1" in err[0]
    assert not (logs / "r1" / "comparison.md").exists()  # no half-written report
    fix = err[0].split("Fix: ")[1].split()
    assert main([str(logs), *fix, "--out", str(logs / "r2")]) == 0
    assert (logs / "r2" / "comparison.md").exists()


def test_evaluations_and_debug_runs_have_their_own_sections_and_stay_out_of_the_means(logs, tmp_path):
    ev = logs / "evals" / "eval-ner-ja-tiny-lora-s1-on-ko" / "t0"
    ev.mkdir(parents=True)
    ev.joinpath("run.json").write_text(json.dumps({
        "job_type": "evaluate", "run_name": "eval-ner-ja-tiny-lora-s1-on-ko", "task": "ner", "locale": "ko",
        "model": "tiny", "adapter": "lora", "seed": 1, "metrics": {"test/f1": 0.01}, "train_locale": "ja",
        "evaluated_run_name": "ner-ja-tiny-lora-s1", "metrics_ci": {"test/f1": {"low": 0.0, "high": 0.03}}}))
    debug = make_run(logs, "lora", 9, 0.0, 1_000, 0.5, 2.0)
    record = json.loads((debug / "run.json").read_text())
    record["config"] = {"trainer": {"fast_dev_run": True}}
    (debug / "run.json").write_text(json.dumps(record))
    paths = write_report(str(logs), str(tmp_path / "out"))
    md = open(paths["markdown"]).read()
    lora = next(line for line in md.splitlines() if line.startswith("| lora |"))
    assert "| 1,2 | 2 |" in lora and "0.6000 ± 0.1414" in lora  # neither the evaluation nor the debug run
    assert paths["evaluations"] == 1 and paths["debug"] == 1
    assert "| eval-ner-ja-tiny-lora-s1-on-ko | ner-ja-tiny-lora-s1 | ja | ko | ner | test/f1 | 0.0100 [0.0000, 0.0300] |" in md
    assert "## Debug runs" in md and str(debug) in md


def test_markdown_embeds_every_plot_it_wrote(logs, tmp_path):
    out = tmp_path / "out"
    paths = write_report(str(logs), str(out))
    md = (out / "comparison.md").read_text()
    embedded = [line[line.index("(") + 1:-1] for line in md.splitlines() if line.startswith("![")]
    assert sorted(embedded) == sorted(p.split("/")[-1] for p in paths["plots"]) and len(embedded) == 4
    assert all((out / name).is_file() for name in embedded)  # links resolve from comparison.md's folder


def test_twelve_series_get_twelve_distinct_legend_entries_and_no_labels_on_points(tmp_path):
    """3 methods x 2 models x 2 locales: each series is named in a legend beside the axes (method, model,
    locale), so no two labels can overlap however close the points are; learning curves likewise."""
    from localize.report.plots import _learning_curves, _tradeoff

    root = tmp_path / "logs"
    for i, (adapter, model, locale) in enumerate((a, m, loc) for a in ("full", "lora", "prefix")
                                                 for m in ("e5", "minilm") for loc in ("ja", "zh")):
        run_dir = make_run(root / model / locale, adapter, 1, 0.5 + 0.001 * i, 1_000, 0.5, 2.0)  # near-equal points
        record = json.loads((run_dir / "run.json").read_text())
        record.update(model=model, locale=locale)
        (run_dir / "run.json").write_text(json.dumps(record))
    df = collect(str(root))
    summary = summarize(df)
    expected = {f"{a} ({m}, {loc})" for a in ("full", "lora", "prefix") for m in ("e5", "minilm") for loc in ("ja", "zh")}
    for fig in (_tradeoff(df, summary, "trainable", "trainable parameters"), _learning_curves(df, summary)):
        (ax,) = fig.axes
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert len(labels) == 12 and set(labels) == expected
        assert not ax.texts  # nothing annotated on the points
    one_setting = df[(df["model"] == "e5") & (df["locale"] == "ja")]
    fig = _tradeoff(one_setting, summarize(one_setting), "trainable", "trainable parameters")
    assert sorted(t.get_text() for t in fig.axes[0].get_legend().get_texts()) == ["full", "lora", "prefix"]


def test_an_augmented_run_is_its_own_method_at_its_labelled_size(tmp_path):
    """data.augment=[mention_swap] on 100 sentences (+ 97 copies) is compared with plain runs at 100
    sentences, as method lora+mention_swap, never averaged with them."""
    root = tmp_path / "logs"
    for seed, f1, augment in ((1, 0.4, None), (1, 0.6, {"operations": ["mention_swap"], "factor": 1, "added": 97})):
        run_dir = make_run(root / str(bool(augment)), "lora", seed, f1, 1_000, 0.5, 2.0)
        record = json.loads((run_dir / "run.json").read_text())
        record["data"] = {"sizes": {"train": 100 + (augment or {}).get("added", 0)}, **({"augment": augment} if augment else {})}
        (run_dir / "run.json").write_text(json.dumps(record))
    summary = summarize(collect(str(root)))
    assert sorted(zip(summary["method"], summary["train_n"], summary["mean"])) == [
        ("lora", 100, pytest.approx(0.4)), ("lora+mention_swap", 100, pytest.approx(0.6))]


def test_two_recipes_of_one_adapter_are_two_methods_not_two_seeds(tmp_path):
    """icl at k=0 and k=8 (tags k0 / k8), seed 1 each: two rows, each paired with the other, not one
    method averaged over two "seeds"; an adapter with one recipe keeps its plain name."""
    from localize.report import analyse

    root = tmp_path / "logs"
    for tag, f1 in (("k0", 0.2), ("k8", 0.6)):
        run_dir = make_run(root / tag, "icl", 1, f1, 0, 0.0, 0.0)
        record = json.loads((run_dir / "run.json").read_text())
        record["tags"] = ["in_context", tag]
        (run_dir / "run.json").write_text(json.dumps(record))
    make_run(root / "full", "full", 1, 0.8, 100_000, 40.0, 10.0)
    summary = analyse(str(root))["summary"]
    assert sorted(zip(summary["method"], summary["n"], summary["mean"])) == [
        ("full", 1, pytest.approx(0.8)), ("icl+k0", 1, pytest.approx(0.2)), ("icl+k8", 1, pytest.approx(0.6))]
