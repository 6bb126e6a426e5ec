"""Optuna studies that several workers share: the engine behind ``-m hparams_search=<name>``.

``python -m localize.train -m hparams_search=ner_lora_optuna +locale=ja`` runs a study through the
Hydra sweeper ``hydra_plugins.localize_optuna.OptunaStudySweeper`` (conf/hydra/sweeper/optuna_study.yaml),
which calls :func:`run_study` with Hydra's launcher. Each trial is an ordinary ``localize.train`` job
(run dir ``<multirun>/<trial number>-<run name>``).

With ``hydra.sweeper.storage=<url>`` the study lives outside the process, so N workers started with the
same command (same ``study_name`` and storage) work on one study: Optuna hands each worker its own trial,
``n_trials`` is the study's total (a re-run of the command continues the study), and the best trial is the
study's. Storage URLs:

- ``null``: in memory (one process, nothing kept).
- ``journal:<file>``: Optuna's journal file (one machine or a shared file system; no database). It has no
  heartbeat: a killed worker's trial stays RUNNING (it still counts toward ``n_trials``).
- ``sqlite:///<file>``, ``postgresql://user:pw@host/db``, ...: Optuna's RDB storage, with a heartbeat
  (``heartbeat_interval``/``grace_period``): a worker that dies mid-trial has that trial marked FAIL by the
  next worker that asks for one, and the study goes on.
"""
from __future__ import annotations

import logging
import math
import os
from collections import Counter
from typing import Any, Callable, Sequence

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

log = logging.getLogger(__name__)

JOURNAL = "journal:"
# A trial asked after the study reached n_trials (two workers asked at once) is closed unrun, marked so.
SKIPPED = "skipped"


def make_storage(url: str | None, heartbeat_interval: int | None = None, grace_period: int | None = None):
    """An Optuna storage for ``url`` (see the module docstring); None keeps the study in memory."""
    if not url:
        return None
    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = url[len(JOURNAL):]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise ValueError(f"hydra.sweeper.storage='{url}' is not a storage URL: use journal:<file>, "
                         f"sqlite:///<file>.db or postgresql://user:password@host/db")
    return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one Hydra sweep override: ``choice(...)``/``range(...)`` categorical,
    ``interval(a, b)`` float, ``int(interval(a, b))`` int, ``tag(log, ...)`` log-scaled."""
    value = override.value()
    if isinstance(value, ChoiceSweep):
        return CategoricalDistribution(list(value.list))
    if isinstance(value, RangeSweep):
        return CategoricalDistribution(list(override.sweep_iterator()))
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(value.start, value.end, log=log_scale)
    raise ValueError(f"{override.input_line}: an Optuna study searches choice(...), range(...) or "
                     f"interval(...) values; give other keys one value")


def split_overrides(lines: Sequence[str]) -> tuple[dict[str, BaseDistribution], list[str]]:
    """Sweep overrides (searched: key -> distribution) and fixed ones (passed to every trial as given)."""
    searched, fixed = {}, []
    for override in OverridesParser.create().parse_overrides(list(lines)):
        if override.is_sweep_override():
            searched[override.get_key_element()] = distribution(override)
        else:
            fixed.append(override.input_line)
    return searched, fixed


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    """``trial.suggest_*`` for a distribution (the public API; the trial records the distribution)."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log)


def default_params(searched: dict[str, BaseDistribution], config: Any) -> dict[str, Any]:
    """The composed config's value at each searched key: the recipe a run without the sweep would use.

    Raises:
        ValueError: a key with no value in the config, or a default outside its searched range.
    """
    from omegaconf import OmegaConf

    params = {}
    for name, dist in searched.items():
        value = OmegaConf.select(config, name, default=None)
        inside = (value in dist.choices if isinstance(dist, CategoricalDistribution)
                  else value is not None and dist.low <= value <= dist.high)
        if not inside:
            raise ValueError(f"hydra.sweeper.enqueue_defaults=true: the default {name}={value} is outside its "
                             f"searched range {dist}. Fix: widen the range to include it, or "
                             f"hydra.sweeper.enqueue_defaults=false")
        params[name] = value
    return params


def run_study(study: optuna.Study, searched: dict[str, BaseDistribution], fixed: Sequence[str], n_trials: int,
              launch: Callable[[list[str], int], float | None],
              sampler_for: Callable[[int], optuna.samplers.BaseSampler] | None = None,
              first: dict[str, Any] | None = None) -> int:
    """Run trials of ``study`` until it holds ``n_trials`` (all workers together); returns how many ran here.

    Args:
        launch: runs one trial's overrides as job number ``trial.number``; returns the objective (None
            or NaN: the trial failed).
        sampler_for: a sampler per trial number, so each worker's draws are seeded by the trial they are
            for (two workers with one ``seed`` would otherwise draw the same values).
        first: parameters the study's first trial runs (``default_params``: the default recipe), so a small
            search can never end below the default. A study that already holds them does not add them again.
    """
    ran = 0
    if first and _counted(study) < n_trials:
        study.enqueue_trial(first, skip_if_exists=True)

    def objective(trial: optuna.Trial) -> float:
        nonlocal ran
        if _counted(study, before=trial.number) >= n_trials:  # another worker asked the last one just now
            trial.set_user_attr(SKIPPED, "the study already had n_trials trials")
            trial.study.stop()
            raise optuna.TrialPruned()
        if sampler_for is not None:
            study.sampler = sampler_for(trial.number)
        params = {name: suggest(trial, name, dist) for name, dist in searched.items()}
        ran += 1
        value = launch([*fixed, *(f"{k}={v}" for k, v in params.items())], trial.number)
        return float("nan") if value is None else float(value)  # NaN: Optuna records the trial FAIL

    def enough(study: optuna.Study, _trial) -> None:
        if _counted(study) >= n_trials:
            study.stop()

    if _counted(study) < n_trials:
        study.optimize(objective, callbacks=[enough], gc_after_trial=False)
    return ran


def _counted(study: optuna.Study, before: int | None = None) -> int:
    """Trials toward ``n_trials`` (numbered below ``before``): every trial asked, except those closed unrun."""
    return sum(SKIPPED not in t.user_attrs and (before is None or t.number < before)
               for t in study.get_trials(deepcopy=False))


def best_summary(study: optuna.Study) -> dict[str, Any]:
    """``optimization_results.yaml``: the study's best trial and its trial counts by state."""
    trials = [t for t in study.get_trials(deepcopy=False) if SKIPPED not in t.user_attrs]
    summary = {"name": "optuna", "study_name": study.study_name,
               "trials": dict(Counter(t.state.name.lower() for t in trials))}
    if any(t.state == TrialState.COMPLETE and not math.isnan(t.value) for t in trials):
        best = study.best_trial
        summary.update(best_params=best.params, best_value=best.value, best_trial=best.number)
    return summary
