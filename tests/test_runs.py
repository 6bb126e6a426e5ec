"""localize.runs: a run dir is read in one place and rebuilt from conf/ + its recorded overrides."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from conftest import FAST, NER, compose_cfg
from localize.evaluate import evaluate
from localize.runs import load_predictor, load_run, read_run


def _eval_cfg(run: str, out, overrides: list[str] = ()):
    return compose_cfg([f"run={run}", "trainer=cpu", "logger=none", *overrides], out, config_name="evaluate")


def test_record_holds_the_overrides_that_rebuild_the_run(lora_run):
    record = json.loads(open(os.path.join(lora_run, "run.json")).read())
    assert record["overrides"] == FAST + NER + ["adapter=lora"]
    info = read_run(lora_run)
    assert info.cfg.adapter.name == "lora" and info.cfg.model.name == "tiny_random" and info.kind == "peft"
    assert "composed_overrides" not in record["config"]  # recorded once, redacted, not in the config


def test_rebuilt_module_predicts_like_the_trained_one(lora_run, tmp_path):
    """The module rebuilt from conf/ + overrides carries the trained weights: same logits as the
    run's own best checkpoint loaded into a second rebuild."""
    a = load_run(lora_run)
    b = load_run(lora_run, ckpt_path=os.path.join(lora_run, "checkpoints", "best.ckpt"))
    ids = torch.tensor([[0, 5, 6, 7, 2]])
    with torch.inference_mode():
        torch.testing.assert_close(a.model(input_ids=ids).logits, b.model(input_ids=ids).logits)


def test_crafted_config_in_run_json_is_never_instantiated(lora_run, tmp_path):
    """run.json's config is a record, not a recipe: a _target_ planted in it is not called."""
    crafted = tmp_path / "crafted"
    shutil.copytree(lora_run, crafted)
    marker = tmp_path / "pwned"
    record = json.loads((crafted / "run.json").read_text())
    record["config"]["module"]["backbone"] = {"_target_": "pathlib.Path.touch", "self": str(marker)}
    record["config"]["data"]["_target_"] = "os.system"
    (crafted / "run.json").write_text(json.dumps(record))
    out = load_predictor(str(crafted)).predict_texts(["東京都に住む"])
    assert not marker.exists() and out[0]["text"] == "東京都に住む"


@pytest.mark.parametrize("override", ["+module.backbone._target_=os.system", "model.trust_remote_code=true",
                                      "+data.x={_target_:os.getcwd}"])
def test_unsafe_recorded_overrides_are_refused_with_the_fix(lora_run, tmp_path, override):
    crafted = tmp_path / "crafted"
    shutil.copytree(lora_run, crafted)
    record = json.loads((crafted / "run.json").read_text())
    record["overrides"].append(override)
    (crafted / "run.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="could make loading the run call code; refused. Remove it"):
        read_run(str(crafted))
    record["overrides"].remove(override)  # the fix the message names
    (crafted / "run.json").write_text(json.dumps(record))
    assert read_run(str(crafted)).cfg.adapter.name == "lora"


def test_older_runs_fall_back_to_hydra_overrides_file(lora_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(lora_run, old)
    record = json.loads((old / "run.json").read_text())
    overrides = record.pop("overrides")
    (old / "run.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="records no overrides.*retrain"):
        read_run(str(old))
    (old / ".hydra").mkdir()
    (old / ".hydra" / "overrides.yaml").write_text("\n".join(f"- {o}" for o in overrides) + "\n")
    assert read_run(str(old)).overrides == overrides


def test_secret_overrides_are_redacted_in_the_record(tmp_path):
    from localize.train import train

    key = "sk-" + "a" * 30
    rec = train(compose_cfg(FAST + NER + ["adapter=lora", f"+wandb_api_key={key}"], tmp_path / "r"))
    text = (tmp_path / "r" / "run.json").read_text()
    assert key not in text and "+wandb_api_key=***" in rec["overrides"]


def test_run_dir_errors_name_the_fix(lora_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_run(tmp_path / "nowhere")
    (tmp_path / "crashed" / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no run.json.*localize.train"):
        evaluate(_eval_cfg(str(tmp_path / "crashed"), tmp_path / "ev"))
    with pytest.raises(FileNotFoundError, match="found one in"):
        read_run(os.path.dirname(lora_run))  # the parent of a run dir

    broken = tmp_path / "no_model"
    shutil.copytree(lora_run, broken)
    shutil.rmtree(broken / "model")
    with pytest.raises(FileNotFoundError, match="holds no saved model.*ckpt_path="):
        load_run(str(broken))

    corrupt = tmp_path / "corrupt"
    shutil.copytree(lora_run, corrupt)
    weights = corrupt / "model" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt"):
        load_run(str(corrupt))

    with pytest.raises(FileNotFoundError, match="ckpt_path="):
        evaluate(_eval_cfg(lora_run, tmp_path / "ev", ["ckpt_path=/nonexistent/best.ckpt"]))

    bad_record = tmp_path / "bad_record"
    shutil.copytree(lora_run, bad_record)
    (bad_record / "run.json").write_text('{"run_name": ')
    with pytest.raises(ValueError, match="unreadable"):
        read_run(str(bad_record))

