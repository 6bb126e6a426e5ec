"""The W&B sweep specs compose with the Hydra config, and match their Optuna equivalents."""

import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep
from omegaconf import OmegaConf

from localize.sweep import command_overrides, expand_sweep, load_spec, main

CONF = Path(__file__).resolve().parents[1] / "conf"
SPECS = sorted((CONF / "sweep").glob("*.yaml"))
PAIRS = [p for p in SPECS if (CONF / "hparams_search" / f"{p.stem}_optuna.yaml").exists()]
PARSER = OverridesParser.create()
BASE = ["+locale=ja", "model=tiny_random"]


def compose_many(override_lists, return_hydra_config=False):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return [compose(config_name="train", overrides=o, return_hydra_config=return_hydra_config)
                    for o in override_lists]
    finally:
        GlobalHydra.instance().clear()


def test_specs_exist():
    assert {p.stem for p in SPECS} >= {"ner_lora", "ner_full"}
    assert "ner_lora" in {p.stem for p in PAIRS}  # the offline Optuna equivalent


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_shape(path):
    spec = load_spec(str(path))
    assert spec["method"] in ("bayes", "random", "grid")
    assert spec["metric"] == {"name": "val/f1_best", "goal": "maximize"}
    cmd = spec["command"]
    assert cmd[:4] == ["${env}", "python", "-m", "localize.train"] and cmd[-1] == "${args_no_hyphens}"
    assert command_overrides(spec)[:2] == ["+locale=ja", "task=ner"]
    assert {"adapter.lr", "data.batch_size", "trainer.max_epochs"} <= set(spec["parameters"])


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_expanded_override_composes(path):
    spec = load_spec(str(path))
    fixed = command_overrides(spec)
    expanded = expand_sweep(spec, n_samples=3, seed=0)
    assert expanded == expand_sweep(spec, n_samples=3, seed=0)  # seeded
    assert len(expanded) == math.prod(len(p["values"]) for p in spec["parameters"].values() if "values" in p) * 3
    base = BASE + [o for o in fixed if o not in BASE]  # `+locale=ja` twice would not compose
    cfgs = compose_many([base + o for o in expanded])
    for overrides, cfg in zip(expanded, cfgs):
        assert cfg.task.name == "ner" and cfg.locale.code == "ja" and cfg.model.name == "tiny_random"
        assert cfg.adapter.name == dict(o.split("=", 1) for o in fixed)["adapter"]
        for o in overrides:
            parsed = PARSER.parse_override(o)
            assert OmegaConf.select(cfg, parsed.key_or_group) == pytest.approx(parsed.value()), o
        assert cfg.module.optimizer.lr == cfg.adapter.lr  # the sampled lr reaches the optimizer
    for key, p in spec["parameters"].items():  # draws stay inside the declared ranges
        if "min" in p:
            values = {PARSER.parse_override(o).value() for ov in expanded for o in ov if o.startswith(key + "=")}
            assert all(p["min"] <= v <= p["max"] for v in values) and len(values) > 1


def _space_from_wandb(p):
    if "values" in p:
        return ("choice", tuple(p["values"]))
    log = p["distribution"] in ("log_uniform_values",)
    kind = "int" if p["distribution"] == "int_uniform" else "float"
    return ("interval", kind, log, p["min"], p["max"])


def _space_from_optuna(expr):
    value = PARSER.parse_override(f"x={expr}").value()
    if isinstance(value, ChoiceSweep):
        return ("choice", tuple(value.list))
    assert isinstance(value, IntervalSweep), expr
    kind = "int" if isinstance(value.start, int) and isinstance(value.end, int) else "float"
    return ("interval", kind, "log" in value.tags, value.start, value.end)


@pytest.mark.parametrize("path", PAIRS, ids=lambda p: p.stem)
def test_optuna_equivalent_has_the_same_space(path):
    optuna = CONF / "hparams_search" / f"{path.stem}_optuna.yaml"
    spec = load_spec(str(path))
    (cfg,) = compose_many([BASE + [f"hparams_search={optuna.stem}"]], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert set(sweeper.params) == set(spec["parameters"])
    for key, p in spec["parameters"].items():
        assert _space_from_optuna(sweeper.params[key]) == _space_from_wandb(p), key
    assert sweeper.direction == spec["metric"]["goal"] and cfg.optimized_metric == spec["metric"]["name"]
    assert sweeper.sampler._target_.endswith("TPESampler") and sweeper.sampler.seed is not None
    fixed = dict(o.split("=", 1) for o in command_overrides(spec))
    assert (cfg.task.name, cfg.adapter.name) == (fixed["task"], fixed["adapter"])


def test_sweep_cli_offline_points_to_optuna(monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main([str(CONF / "sweep" / "ner_lora.yaml"), "--count", "1"]) == 2
    assert "hparams_search=ner_lora_optuna" in capsys.readouterr().err


def test_optuna_multirun_runs_offline_and_reports_the_best_trial(tmp_path, capsys):
    """The offline search end to end (2 trials on a tiny model): each trial is a normal run, and the
    sweeper's best value is the best trial's objective; experiments/lora_search/trials.py tabulates it."""
    import importlib.util
    import json
    import subprocess
    import sys

    import yaml

    from conftest import FAST

    fast = [o for o in FAST if not o.startswith(("trainer.max_epochs", "data.batch_size"))]  # searched keys
    cmd = [sys.executable, "-m", "localize.train", "-m", "hparams_search=ner_lora_optuna", "+locale=ja", *fast,
           "hydra.sweeper.n_trials=2", f"paths.log_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=CONF.parent, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (multirun,) = (tmp_path / "multiruns").iterdir()
    best = yaml.safe_load((multirun / "optimization_results.yaml").read_text())
    records = [json.loads(p.read_text()) for p in multirun.glob("*/run.json")]
    assert len(records) == 2 and set(best["best_params"]) == {"adapter.lr", "adapter.peft.r", "data.batch_size",
                                                              "trainer.max_epochs"}
    assert best["best_value"] == pytest.approx(max(r["metrics"]["val/f1_best"] for r in records))

    spec = importlib.util.spec_from_file_location("trials", CONF.parent / "experiments" / "lora_search" / "trials.py")
    trials = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trials)
    assert trials.main(str(multirun)) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) == 3 and "Best (optimization_results.yaml)" in table  # header + 2 trials
