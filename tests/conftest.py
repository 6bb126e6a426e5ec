"""Shared fixtures: compose the real Hydra config, shrunk for speed (tiny model, CPU, 1 epoch)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Overrides that make any composed run fast: tiny model, CPU, few batches, no W&B.
FAST = [
    "model=tiny_random",
    "trainer=cpu",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "logger=none",
    "data.batch_size=8",
]


def compose_cfg(overrides: list[str], out_dir: str | Path | None = None, config_name: str = "train") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with overrides; set the run dir (no Hydra runtime here)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=False)
    if out_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(out_dir)
    GlobalHydra.instance().clear()
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    """Factory: ``make_cfg(["+locale=ja", "task=ner", ...])`` → a fast config writing to tmp_path."""

    def _make(overrides: list[str], fast: bool = True) -> DictConfig:
        return compose_cfg((FAST if fast else []) + list(overrides), tmp_path / "run")

    return _make


@pytest.fixture(scope="session")
def e5_path():
    """The embedded e5-small, converted once per machine (seconds) into the shared cache."""
    from localize.models.e5_convert import ensure_e5_small

    return ensure_e5_small()
