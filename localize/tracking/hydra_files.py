"""Hydra's run files, written redacted.

Hydra writes the command-line overrides verbatim to ``<run>/.hydra/overrides.yaml``, and their
values to ``config.yaml`` and ``hydra.yaml`` (``overrides.task``, ``job.override_dirname``), before the
job starts: a key passed as ``+wandb_api_key=sk-...`` would sit in plain text in every run dir.
``conf/hydra/default.yaml`` therefore turns Hydra's own writer off (``output_subdir: null``) and
registers :class:`RedactedHydraFiles`, which writes the same three files through the one set of
redaction rules (``localize.tracking.record.redact``) before the job runs — so the secrets never
reach the disk, and ``localize.runs`` still finds ``.hydra/overrides.yaml`` where it always was.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from localize.tracking.atomic import atomic_file
from localize.tracking.record import redact, redact_overrides


class RedactedHydraFiles(Callback):
    """Writes ``<run>/<subdir>/{config,hydra,overrides}.yaml`` (as Hydra would), secrets blanked.

    In a multirun the sweep dir's ``multirun.yaml`` (written by the sweeper just before the first
    job) is rewritten redacted too.

    Args:
        subdir: the folder inside the run dir (Hydra's default ``.hydra``).
    """

    def __init__(self, subdir: str = ".hydra") -> None:
        self.subdir = subdir

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        out = Path(config.hydra.runtime.output_dir) / self.subdir
        out.mkdir(parents=True, exist_ok=True)
        task = {k: v for k, v in _plain(config).items() if k != "hydra"}
        _write(out / "config.yaml", redact(task))
        _write(out / "hydra.yaml", {"hydra": redact(_plain(config.hydra))})
        _write(out / "overrides.yaml", redact_overrides([str(o) for o in config.hydra.overrides.task]))
        if str(config.hydra.mode) == "RunMode.MULTIRUN":
            sweep_file = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"
            if sweep_file.is_file():
                _write(sweep_file, redact(_plain(OmegaConf.load(sweep_file))))


def _plain(node: Any) -> Any:
    """The config as written (interpolations kept as ``${...}``, not resolved)."""
    return OmegaConf.to_container(node, resolve=False, enum_to_str=True)


def _write(path: Path, data: Any) -> None:
    with atomic_file(str(path)) as f:
        yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True)
