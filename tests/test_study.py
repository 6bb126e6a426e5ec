"""Optuna studies shared by workers (localize/study.py + the optuna_study sweeper)."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from localize.study import SKIPPED, best_summary, make_storage, run_study, split_overrides
from conftest import compose_cfg

ROOT = Path(__file__).resolve().parents[1]
WORKER = [sys.executable, str(ROOT / "tests" / "fixtures" / "study_worker.py"), "-m", "hparams_search=ner_lora_optuna",
          "+locale=ja", "logger=none"]


def test_search_space_strings_become_optuna_distributions():
    searched, fixed = split_overrides(["a=choice(8, 16)", "b=int(interval(3, 10))", "c=tag(log, interval(0.0001, 0.003))",
                                       "d=interval(0.0, 0.5)", "+locale=ja", "task=ner"])
    assert searched == {"a": CategoricalDistribution([8, 16]), "b": IntDistribution(3, 10),
                        "c": FloatDistribution(0.0001, 0.003, log=True), "d": FloatDistribution(0.0, 0.5)}
    assert fixed == ["+locale=ja", "task=ner"]


def test_a_study_stops_at_n_trials_and_a_rerun_continues_it():
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    searched, _ = split_overrides(["x=interval(0.0, 1.0)"])
    seen = []

    def launch(overrides, number):
        seen.append((number, overrides[0]))
        return float(overrides[-1].split("=")[1])

    assert run_study(study, searched, ["k=v"], 2, launch) == 2 and [n for n, _ in seen] == [0, 1]
    assert {o for _, o in seen} == {"k=v"}  # fixed overrides reach every trial
    assert run_study(study, searched, ["k=v"], 2, launch) == 0  # a full study runs nothing more
    assert run_study(study, searched, ["k=v"], 3, launch) == 1 and len(study.trials) == 3  # n_trials raised
    best = best_summary(study)
    assert best["best_value"] == max(t.value for t in study.trials) and best["trials"] == {"complete": 3}
    assert best["best_params"] == study.best_trial.params


def test_a_trial_asked_past_n_trials_is_closed_unrun(monkeypatch):
    """Two workers read "n-1 trials" at once and both ask: the later trial is marked skipped, not run,
    and does not use up the budget of a later re-run."""
    import localize.study as st

    study = optuna.create_study(direction="maximize")
    searched, _ = split_overrides(["x=interval(0.0, 1.0)"])
    study.ask()  # the other worker's trial 0, still running
    real, calls = st._counted, []

    def counted(s, before=None):  # the pre-check reads the study before the other worker's ask landed
        calls.append(before)
        return 0 if len(calls) == 1 else real(s, before)

    monkeypatch.setattr(st, "_counted", counted)
    ran = run_study(study, searched, [], 1, lambda o, n: 1.0)
    assert ran == 0 and study.trials[1].user_attrs[SKIPPED] and study.trials[1].state == TrialState.PRUNED
    monkeypatch.setattr(st, "_counted", real)
    assert run_study(study, searched, [], 2, lambda o, n: 1.0) == 1  # the skipped trial is not counted


def test_a_failed_trial_is_recorded_failed_and_the_study_goes_on():
    study = optuna.create_study(direction="maximize")
    searched, _ = split_overrides(["x=interval(0.0, 1.0)"])
    values = iter([None, float("nan"), 0.7])
    assert run_study(study, searched, [], 3, lambda o, n: next(values)) == 3
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert best_summary(study)["best_value"] == 0.7 and best_summary(study)["trials"] == {"complete": 1, "fail": 2}


def test_a_bad_storage_url_names_the_forms_that_work(tmp_path):
    with pytest.raises(ValueError, match=r"storage='logs/x.db' is not a storage URL: use journal:<file>"):
        make_storage("logs/x.db")
    assert make_storage(f"journal:{tmp_path}/new/dir/s.journal") is not None  # the fix named works, dirs made
    assert make_storage(f"sqlite:///{tmp_path}/s.db") is not None


def _worker(tmp_path, storage, n_trials, extra=(), sleep=0.0):
    env = {**os.environ, "STUDY_SLEEP": str(sleep), "WANDB_MODE": "offline"}
    return subprocess.Popen([*WORKER, f"hydra.sweeper.storage={storage}", f"hydra.sweeper.n_trials={n_trials}",
                             f"+markers={tmp_path / 'markers'}", f"paths.log_dir={tmp_path / 'logs'}", *extra],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_worker_processes_share_one_study(tmp_path):
    """Two workers, one journal file: the 6 trials split between them, none runs twice, both report the
    study's best."""
    (tmp_path / "markers").mkdir()
    storage = f"journal:{tmp_path}/study.journal"
    workers = [_worker(tmp_path, storage, 6, sleep=1.5) for _ in range(2)]
    outs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    markers = [m.split("-") for m in os.listdir(tmp_path / "markers")]
    numbers = sorted(int(n) for n, _ in markers)
    assert numbers == [0, 1, 2, 3, 4, 5]  # every trial once: none twice, none lost
    assert len({pid for _, pid in markers}) == 2  # both workers ran trials
    study = optuna.load_study(study_name="ner_lora", storage=make_storage(storage))
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 6 and not any(SKIPPED in t.user_attrs for t in done)
    results = [yaml.safe_load(p.read_text()) for p in (tmp_path / "logs" / "multiruns").glob("*/optimization_results.yaml")]
    assert len(results) == 2  # one multirun dir per worker
    assert all(r["best_value"] == pytest.approx(max(t.value for t in done)) for r in results)
    assert sum(r["ran_here"] for r in results) == 6 and all(r["ran_here"] >= 1 for r in results)


def test_a_killed_workers_trial_is_failed_and_the_study_goes_on(tmp_path):
    """Worker 1 dies mid-trial (SIGKILL); its RUNNING trial stops beating, so worker 2 marks it FAIL and
    runs the rest of the study."""
    (tmp_path / "markers").mkdir()
    storage = f"sqlite:///{tmp_path}/study.db"
    beat = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2"]
    first = _worker(tmp_path, storage, 3, beat, sleep=120)
    deadline = time.time() + 120
    while not os.listdir(tmp_path / "markers") and time.time() < deadline:
        time.sleep(0.2)
    assert os.listdir(tmp_path / "markers"), "worker 1 never started a trial"
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    time.sleep(3)  # past the grace period
    second = _worker(tmp_path, storage, 3, beat)
    out = second.communicate(timeout=300)[0]
    assert second.returncode == 0, out[-3000:]
    study = optuna.load_study(study_name="ner_lora", storage=make_storage(storage))
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert not math.isnan(study.best_value)


def test_the_first_trial_runs_the_default_recipe_once():
    """``first``: trial 0 runs the given parameters; a re-run of the study does not add them again."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    searched, _ = split_overrides(["x=interval(0.0, 1.0)", "b=choice(8, 16)"])
    seen = []

    def launch(overrides, number):
        seen.append(overrides)
        return 0.0

    assert run_study(study, searched, [], 2, launch, first={"x": 0.25, "b": 16}) == 2
    assert seen[0] == ["x=0.25", "b=16"] and seen[1] != seen[0]
    assert run_study(study, searched, [], 3, launch, first={"x": 0.25, "b": 16}) == 1
    assert sum(t.params == {"x": 0.25, "b": 16} for t in study.trials) == 1  # not enqueued twice


def test_a_default_outside_the_searched_range_names_the_key_and_the_fix_works():
    from omegaconf import OmegaConf

    from localize.study import default_params

    config = OmegaConf.create({"data": {"batch_size": 12}, "adapter": {"lr": 3e-4}})
    searched, _ = split_overrides(["data.batch_size=choice(8, 16)", "adapter.lr=tag(log, interval(6e-5, 1.5e-3))"])
    with pytest.raises(ValueError, match=r"data.batch_size=12 is outside.*Fix: widen the range"):
        default_params(searched, config)
    widened, _ = split_overrides(["data.batch_size=choice(8, 12, 16)", "adapter.lr=tag(log, interval(6e-5, 1.5e-3))"])
    assert default_params(widened, config) == {"data.batch_size": 12, "adapter.lr": 3e-4}


def _two_trials(tmp_path, study_name: str, *overrides: str) -> optuna.Study:
    """A 2-trial study of the real sweeper and config through the marker worker; the study it wrote."""
    (tmp_path / "markers").mkdir()
    storage = f"journal:{tmp_path}/study.journal"
    worker = subprocess.run([sys.executable, str(ROOT / "tests" / "fixtures" / "study_worker.py"), "-m", *overrides,
                             "logger=none", f"hydra.sweeper.storage={storage}", "hydra.sweeper.n_trials=2",
                             f"+markers={tmp_path / 'markers'}", f"paths.log_dir={tmp_path / 'logs'}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0, (worker.stdout + worker.stderr)[-3000:]
    return optuna.load_study(study_name=study_name, storage=make_storage(storage))


def test_the_budget_search_starts_from_the_composed_default_recipe(tmp_path):
    """The real sweeper and config (hparams_search=ner_budget): trial 0 is the adapter's default lr,
    batch size and epochs, although the command line sweeps the lr."""
    # (not the range whose seeded trial 1 drew this lr: trial 1 would repeat it)
    study = _two_trials(tmp_path, "ner_budget_lora", "hparams_search=ner_budget", "+locale=ja", "adapter=lora",
                        "adapter.lr=tag(log, interval(1e-4, 3e-3))")
    # NER's LoRA recipe (conf/recipe/ner_lora.yaml) is the default the search starts from
    assert study.trials[0].params == {"data.batch_size": 16, "trainer.max_epochs": 10,
                                      "adapter.lr": 6.681805359748402e-04}
    assert study.trials[1].params != study.trials[0].params


def test_the_lr_budget_search_starts_from_the_default_lr_and_reads_the_tasks_best_dev_metric(tmp_path):
    """hparams_search=lr_budget (experiments/few_shot): any task, only the lr searched, trial 0 at the
    adapter's default, the objective the task's own best-dev metric."""
    cfg = compose_cfg(["hparams_search=lr_budget", "+locale=zh", "task=sentiment", "adapter=lora"], tmp_path / "c")
    assert cfg.optimized_metric == "val/f1_macro_best"
    study = _two_trials(tmp_path, "lr_budget_sentiment_lora", "hparams_search=lr_budget", "+locale=zh",
                        "task=sentiment", "adapter=lora", "adapter.lr=tag(log, interval(1e-4, 5e-3))")
    default_lr = compose_cfg(["+locale=zh", "task=sentiment", "adapter=lora"], tmp_path / "d").adapter.lr
    assert study.trials[0].params == {"adapter.lr": default_lr}
    assert list(study.trials[1].params) == ["adapter.lr"] and study.trials[1].params["adapter.lr"] != default_lr
