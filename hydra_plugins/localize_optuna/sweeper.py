"""Hydra sweeper for shared Optuna studies (current optuna; the logic is in :mod:`localize.study`).

Hydra only instantiates sweepers that live in the ``hydra_plugins`` package, hence this thin class.
Config: conf/hydra/sweeper/optuna_study.yaml; a search: conf/hparams_search/*.yaml.
"""
from __future__ import annotations

import logging
import os
from typing import Any, List, Optional

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class OptunaStudySweeper(Sweeper):
    def __init__(self, study_name: Optional[str], storage: Optional[str], n_trials: int, direction: str,
                 sampler: DictConfig, params: Optional[DictConfig] = None, heartbeat_interval: Optional[int] = None,
                 grace_period: Optional[int] = None, enqueue_defaults: bool = False) -> None:
        self.study_name, self.storage_url, self.n_trials, self.direction = study_name, storage, n_trials, direction
        self.sampler_cfg, self.params = sampler, params or {}
        self.heartbeat = (heartbeat_interval, grace_period)
        self.enqueue_defaults = enqueue_defaults
        self.config: Optional[DictConfig] = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)

    def _sampler(self, trial_number: Optional[int] = None) -> Any:
        seed = self.sampler_cfg.get("seed")
        if trial_number is None or seed is None:
            return instantiate(self.sampler_cfg)
        return instantiate(self.sampler_cfg, seed=int(seed) + trial_number)

    def _launch(self, overrides: List[str], number: int) -> Any:
        (ret,) = self.launcher.launch([tuple(overrides)], initial_job_idx=number)
        return ret.return_value  # a job that raised re-raises here (the worker stops, as a run would)

    def sweep(self, arguments: List[str]) -> None:
        import optuna

        from localize.study import best_summary, default_params, make_storage, run_study, split_overrides

        searched, fixed = split_overrides([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        # Multirun composes the config without the sweep overrides: its values are the default recipe.
        first = default_params(searched, self.config) if self.enqueue_defaults else None
        storage = make_storage(self.storage_url, *self.heartbeat)
        if storage is not None and not self.study_name:
            raise ValueError("a shared study needs a name: set hydra.sweeper.study_name=<name>")
        study = optuna.create_study(study_name=self.study_name, storage=storage, direction=self.direction,
                                    sampler=self._sampler(), load_if_exists=True)
        log.info("Optuna study '%s' (%s): %d of %d trials there", study.study_name,
                 self.storage_url or "in memory", len(study.trials), self.n_trials)
        ran = run_study(study, searched, fixed, self.n_trials, self._launch,
                        sampler_for=self._sampler if self.sampler_cfg.get("seed") is not None else None, first=first)
        summary = best_summary(study)
        summary["ran_here"] = ran
        sweep_dir = str(self.config.hydra.sweep.dir)
        os.makedirs(sweep_dir, exist_ok=True)
        OmegaConf.save(OmegaConf.create(summary), os.path.join(sweep_dir, "optimization_results.yaml"))
        log.info("study '%s': best %s = %s (trial %s); %d trial(s) ran in this worker", study.study_name,
                 summary.get("best_params"), summary.get("best_value"), summary.get("best_trial"), ran)
