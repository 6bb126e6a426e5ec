"""localize.config.compose: the one way tests, benchmarks, experiments and run rebuilds compose conf/."""
from __future__ import annotations

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException

from localize.config import CONF_DIR, compose


def test_compose_applies_overrides_and_the_run_dir():
    cfg = compose(["+locale=ja", "task=translation", "adapter=lora"], out_dir="/tmp/run")
    assert (cfg.task.name, cfg.adapter.name, cfg.locale.code, cfg.model.name) == ("translation", "lora", "ja",
                                                                                  "gemma3_270m")
    assert cfg.adapter.lr == 2e-3  # the translation x LoRA recipe, picked by the defaults list
    assert cfg.paths.output_dir == "/tmp/run" and cfg.trainer.default_root_dir == "/tmp/run"
    assert "hydra" not in cfg
    assert compose(["run=/some/run"], config_name="evaluate").run == "/some/run"
    assert compose(["hparams_search=ner_lora_optuna"], return_hydra_config=True).hydra.sweeper.study_name == "ner_lora"


def test_compose_inside_a_running_hydra_leaves_it_as_it_was():
    """Inside a Hydra app (or another initialize block) the caller's GlobalHydra is put back untouched."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        outer = GlobalHydra.instance()
        outer_hydra = outer.hydra
        assert compose(["+locale=ja", "task=sentiment"]).task.name == "sentiment"
        assert GlobalHydra.instance() is outer and outer.hydra is outer_hydra
    assert not GlobalHydra.instance().is_initialized()
    assert compose(["+locale=ja"]).task.name == "ner"  # and with no Hydra around


def test_compose_error_lists_the_options_and_restores_state():
    with pytest.raises(MissingConfigException, match=r"Could not find 'adapter/lorra'(.|\n)*Available options(.|\n)*lora"):
        compose(["adapter=lorra"])
    assert not GlobalHydra.instance().is_initialized()
    assert compose().adapter.name == "full_frozen_emb"  # a failed compose leaves nothing behind
