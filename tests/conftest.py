"""Shared fixtures: compose the real Hydra config, shrunk for speed (tiny model, CPU, 1 epoch)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import DictConfig

from localize.config import CONF_DIR, compose

ROOT = Path(__file__).resolve().parents[1]
CONF = str(CONF_DIR)

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
    """``localize.config.compose`` with the run dir second (the order the tests call it in)."""
    return compose(overrides, config_name=config_name, out_dir=out_dir)


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


# ----------------------------------------------------------------------------- trained tiny runs
# Shared by the evaluate / predict / export / bank / runs tests: each run trains once per session.
# prior_bias off: a few steps of the random tiny model would leave a head started at the tag prior all-O
# (status degenerate, which evaluate/predict/export refuse); the recipes' prior_bias is tested on its own.
NER = ["+locale=ja", "task=ner", "module.prior_bias=false"]
TEXTS = ["2005年7月14日、南アフリカ共和国ダーバンで開催中の第29回世界遺産会議で", "東京都に住む山田太郎", "", "ＡＢＣ株式会社"]


def write_conll(path, keep: set[str]) -> None:
    """hironsan with only the ``keep`` entity types (the rest tagged O): another label set."""
    from localize.data.ner_readers import read_hironsan

    lines = []
    for ex in read_hironsan():
        if not all(w.strip() for w in ex["tokens"]):  # CoNLL cannot hold the corpus's U+3000 words
            continue
        lines += [f"{w}\t{t if t == 'O' or t[2:] in keep else 'O'}" for w, t in zip(ex["tokens"], ex["tags"])] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def train_run(runs_root):
    """Factory: ``train_run(name, overrides)`` → the dir of a fast NER run, trained once."""
    from localize.train import train

    def _train(name: str, overrides: list[str]) -> str:
        out = runs_root / name
        if not (out / "run.json").exists():
            train(compose_cfg(FAST + NER + list(overrides), out))
        return str(out)

    return _train


@pytest.fixture(scope="session")
def lora_run(train_run):
    return train_run("lora", ["adapter=lora"])


@pytest.fixture(scope="session")
def locper_run(train_run, runs_root):
    """Same base (same seed: tiny_random's weights are drawn from it), another label set."""
    conll = runs_root / "locper.conll"
    write_conll(conll, {"LOCATION", "PERSON"})
    return train_run("locper", ["adapter=lora", f"data.path={conll}", "data.split_sizes=[0.8,0.1,0.1]"])
