"""Compose the project's Hydra config outside a Hydra app (tests, benchmarks, experiments, run rebuilds)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from omegaconf import DictConfig, open_dict

# The project's own config tree (the entry points' ``config_path="../conf"``).
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
OVERRIDES_KEY = "composed_overrides"


def compose(overrides: Iterable[str] = (), config_name: str = "train", out_dir: str | Path | None = None,
            return_hydra_config: bool = False, config_dir: str | Path = CONF_DIR) -> DictConfig:
    """The config ``python -m localize.<config_name> <overrides>`` would run with, composed in-process.

    Safe to call anywhere: inside a running Hydra job (``@hydra.main``), inside another
    ``initialize_config_dir`` block, or repeatedly. Hydra allows one initialised ``GlobalHydra`` at a
    time, so the caller's is set aside while composing and put back afterwards, untouched.

    Args:
        overrides: Hydra command-line overrides (``["+locale=ja", "task=ner", "adapter=lora"]``).
        config_name: the primary config in ``conf/``: ``train``, ``evaluate``, ``predict``, ``export``.
        out_dir: sets ``paths.output_dir``, which otherwise interpolates ``${hydra:runtime.output_dir}``
            and only resolves inside a Hydra job.
        return_hydra_config: keep the ``hydra`` node (sweeper, ``runtime.choices``, run dir).
        config_dir: the config tree to compose from (default: this project's ``conf/``).

    Returns:
        The composed, unresolved config.

    Raises:
        hydra.errors.MissingConfigException: an unknown config group option (its message lists the
            available ones).
        hydra.errors.ConfigCompositionException: any other override that does not compose.
    """
    overrides = list(overrides)
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    caller = GlobalHydra.instance()
    caller_hydra = caller.hydra
    caller.clear()  # initialize_config_dir refuses to run while another Hydra is initialised
    try:
        with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides),
                                return_hydra_config=return_hydra_config)
    finally:
        caller.hydra = caller_hydra
        GlobalHydra.set_instance(caller)
    with open_dict(cfg):
        # What the run record stores to rebuild this run from conf/ (Hydra's own runtime record
        # of them, ``HydraConfig.get().overrides.task``, exists only inside a Hydra job).
        cfg[OVERRIDES_KEY] = list(overrides)
        if out_dir is not None:
            cfg.paths.output_dir = str(out_dir)
    return cfg


def job_overrides(cfg: DictConfig) -> list[str] | None:
    """The overrides a job was composed with: ``compose``'s note, else the running Hydra job's."""
    from hydra.core.hydra_config import HydraConfig

    if OVERRIDES_KEY in cfg:
        return [str(o) for o in cfg[OVERRIDES_KEY]]
    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
    return None
