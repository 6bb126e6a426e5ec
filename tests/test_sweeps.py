"""One search-space definition (conf/search_space) feeds the W&B sweeps and the Optuna searches; the
sweeps' overrides compose with the Hydra config."""

import math
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep
from omegaconf import OmegaConf

from localize.config import compose
from localize.sweep import (command_overrides, expand_sweep, load_search_space, load_spec, main, optuna_params,
                            wandb_parameters)

CONF = Path(__file__).resolve().parents[1] / "conf"
SPECS = sorted((CONF / "sweep").glob("*.yaml"))
PAIRS = [p for p in SPECS if (CONF / "hparams_search" / f"{p.stem}_optuna.yaml").exists()]
PARSER = OverridesParser.create()
BASE = ["+locale=ja", "model=tiny_random"]


def compose_many(override_lists, return_hydra_config=False):
    return [compose(o, return_hydra_config=return_hydra_config) for o in override_lists]


def test_specs_exist():
    assert {p.stem for p in SPECS} >= {"ner_lora", "ner_full"}
    assert {p.stem for p in PAIRS} >= {"ner_lora", "ner_full"}  # the offline Optuna equivalents


@pytest.mark.parametrize("path", PAIRS, ids=lambda p: p.stem)
def test_the_search_space_is_written_once(path):
    """Neither side spells the space out: the sweep names it, the Optuna file interpolates it."""
    raw_spec = yaml.safe_load(path.read_text())
    assert raw_spec["search_space"] == path.stem and "parameters" not in raw_spec
    raw_optuna = OmegaConf.load(CONF / "hparams_search" / f"{path.stem}_optuna.yaml")
    assert OmegaConf.to_container(raw_optuna.hydra.sweeper)["params"] == f"${{search_space:{path.stem},optuna}}"


def test_search_space_translates_to_wandb_and_optuna():
    space = {"lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
             "dropout": {"type": "float", "low": 0.0, "high": 0.5, "log": False},
             "epochs": {"type": "int", "low": 3, "high": 10, "log": False},
             "r": {"type": "choice", "values": [8, 16]}}
    assert wandb_parameters(space) == {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 3e-3},
        "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
        "epochs": {"distribution": "int_uniform", "min": 3, "max": 10},
        "r": {"values": [8, 16]}}
    assert optuna_params(space) == {"lr": "tag(log, interval(0.0001, 0.003))", "dropout": "interval(0.0, 0.5)",
                                    "epochs": "int(interval(3, 10))", "r": "choice(8, 16)"}


@pytest.mark.parametrize("text, match", [
    ("x: {type: uniform, low: 1, high: 2}", r"x: type must be one of float, int, choice, got 'uniform'"),
    ("x: {type: float, low: 1e-4, high: 1.0}", r"`low` must be a number, got '1e-4' \(YAML reads 1e-4 as a string"),
    ("x: {type: int, low: 1.5, high: 3}", r"`low` must be an int, got 1.5"),
    ("x: {type: float, low: 2.0, high: 1.0}", r"needs low < high, got 2.0 and 1.0"),
    ("x: {type: int, low: 1, high: 8, log: true}", r"log applies to float parameters with low > 0"),
    ("x: {type: choice, values: []}", r"a choice needs a non-empty `values` list"),
])
def test_bad_search_space_fails_clearly(tmp_path, text, match):
    (tmp_path / "search_space").mkdir()
    (tmp_path / "search_space" / "bad.yaml").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_search_space("bad", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"no search space 'nope' .*available: bad"):
        load_search_space("nope", str(tmp_path))


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
        sampled = {PARSER.parse_override(o).key_or_group: PARSER.parse_override(o).value() for o in overrides}
        assert cfg.module.lr == pytest.approx(sampled["adapter.lr"])  # the module argument follows the draw
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


def _space_from_definition(p):
    if p["type"] == "choice":
        return ("choice", tuple(p["values"]))
    return ("interval", p["type"], p["log"], p["low"], p["high"])


@pytest.mark.parametrize("path", PAIRS, ids=lambda p: p.stem)
def test_optuna_equivalent_has_the_same_space(path):
    """The W&B spec and the Optuna sweeper, as read by their own parsers, both match the definition."""
    optuna = CONF / "hparams_search" / f"{path.stem}_optuna.yaml"
    space = load_search_space(path.stem)
    spec = load_spec(str(path))
    (cfg,) = compose_many([BASE + [f"hparams_search={optuna.stem}"]], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert list(sweeper.params) == list(spec["parameters"]) == list(space)
    for key, p in space.items():
        assert _space_from_optuna(sweeper.params[key]) == _space_from_wandb(spec["parameters"][key]) == \
            _space_from_definition(p), key
    assert sweeper.direction == spec["metric"]["goal"] and cfg.optimized_metric == spec["metric"]["name"]
    assert sweeper.sampler._target_.endswith("TPESampler") and sweeper.sampler.seed is not None
    fixed = dict(o.split("=", 1) for o in command_overrides(spec))
    assert (cfg.task.name, cfg.adapter.name) == (fixed["task"], fixed["adapter"])


def test_sweep_cli_offline_points_to_optuna(monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main([str(CONF / "sweep" / "ner_lora.yaml"), "--count", "1"]) == 2
    assert "hparams_search=ner_lora_optuna" in capsys.readouterr().err


def test_sweep_cli_prints_the_expanded_spec_for_wandb(capsys):
    assert main([str(CONF / "sweep" / "ner_lora.yaml"), "--print-spec"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == load_spec(str(CONF / "sweep" / "ner_lora.yaml")) and "search_space" not in printed
    assert printed["parameters"]["adapter.lr"] == {"distribution": "log_uniform_values", "min": 1e-4, "max": 3e-3}



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
