"""Every user error is one line that names the key and a fix — and the fix works.

Each case makes the mistake, checks the message, then applies the fix the message suggests
(``Fix: key=value`` is parsed out of the message and used as the override) and checks that the run
gets past that error. Config mistakes are caught by ``localize.validate`` before anything is built;
data mistakes by the readers; run-dir mistakes by ``localize.runs``.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile

import pytest

from conftest import FAST, ROOT, compose_cfg
from localize.data.errors import DataError
from localize.utils import build
from localize.validate import KNOBS, check_config

ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
ENV.pop("HYDRA_FULL_ERROR", None)


def suggested(message: str) -> str:
    """The override a message's ``Fix:`` offers (``trainer.max_epochs=3``, ``data.labels=[O,B-X,I-X]``)."""
    m = re.search(r"Fix: .*?(\+?[\w.]+=\S+)", message)
    assert m, f"no key=value fix in: {message}"
    return m[1].rstrip(",.;")


def _replace(overrides: list[str], fix: str) -> list[str]:
    """``overrides`` with ``fix`` instead of every override of its key (keeping a ``+`` that added the key)."""
    key = fix.split("=", 1)[0].lstrip("+")
    same = [o for o in overrides if o.split("=", 1)[0].lstrip("+") == key]
    added = any(o.startswith("+") for o in same) and not fix.startswith("+")
    return [o for o in overrides if o not in same] + [("+" if added else "") + fix]


# ----------------------------------------------------------------------------- config knobs
NER = ["+locale=ja", "task=ner"]
KNOB_CASES = [
    (["trainer.max_epochs=abc"], "trainer.max_epochs='abc' is not an integer"),
    (["data.batch_size=abc"], "data.batch_size='abc' is not an integer"),
    (["data.batch_size=0"], "data.batch_size=0 must be >= 1"),
    (["data.eval_batch_size=-4"], "data.eval_batch_size=-4 must be >= 1"),
    (["data.num_workers=-2"], "data.num_workers=-2 must be >= 0"),
    (["data.group_by_length=maybe"], "data.group_by_length='maybe' is not true or false"),
    (["data.max_length=long"], "data.max_length='long' is not an integer"),
    (["data.max_train_examples=many"], "data.max_train_examples='many' is not an integer"),
    (["data.char_level=sometimes"], "data.char_level='sometimes' is not true or false"),
    (["data.tag_col=last"], "data.tag_col='last' is not an integer"),
    (["data.cache_tokenized=1"], "data.cache_tokenized=1 is not true or false"),
    (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches=0 must be >= 1"),
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val=-1 must be >= 0"),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps=0 must be >= 1"),
    (["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches=1.5 is not a fraction"),
    (["trainer.precision=17"], "trainer.precision=17 is not one of"),
    (["trainer.accelerator=quantum"], "trainer.accelerator='quantum' is not one of"),
    (["trainer.deterministic=sometimes"], "trainer.deterministic='sometimes' is not true or false"),
    (["trainer.devices=1.5"], "trainer.devices=1.5 is not a count or a name"),
    (["adapter=lora", "adapter.peft.r=0"], "adapter.peft.r=0 must be >= 1"),
    (["adapter=lora", "adapter.peft.r=big"], "adapter.peft.r='big' is not an integer"),
    (["adapter=lora", "adapter.peft.lora_dropout=1.5"], "adapter.peft.lora_dropout=1.5 must be < 1"),
    (["adapter=lora", "adapter.lr=fast"], "adapter.lr='fast' is not a number"),
    (["adapter=lora", "adapter.lr=-0.1"], "adapter.lr=-0.1 must be > 0"),
    (["adapter=lora", "adapter.lr=0"], "adapter.lr=0 must be > 0"),
    (["adapter=lora", "adapter.peft.lora_alpha=0"], "adapter.peft.lora_alpha=0 must be > 0"),
    (["adapter.head_lr=abc"], "adapter.head_lr='abc' is not a number"),
    (["adapter=prefix", "adapter.peft.num_virtual_tokens=0"], "adapter.peft.num_virtual_tokens=0 must be >= 1"),
    (["adapter=adalora", "adapter.peft.target_r=0"], "adapter.peft.target_r=0 must be >= 1"),
    (["module.warmup_ratio=2"], "module.warmup_ratio=2 must be <= 1"),
    (["callbacks.early_stopping.patience=-1"], "callbacks.early_stopping.patience=-1 must be >= 0"),
    (["seed=abc"], "seed='abc' is not an integer"),
    (["test=maybe"], "test='maybe' is not true or false"),
    (["task=sentiment", "data.truncation=middle"], "data.truncation='middle' is not one of ['head', 'head_tail']"),
    (["task=sentiment", "data.max_chars=0"], "data.max_chars=0 must be >= 1"),
    (["task=sentiment", "data.use_class_weights=yes"], "data.use_class_weights='yes' is not true or false"),
]


@pytest.mark.parametrize("bad,expected", KNOB_CASES, ids=[c[0][-1] for c in KNOB_CASES])
def test_wrong_knob_is_refused_before_anything_is_built_and_its_fix_works(bad, expected, monkeypatch, tmp_path):
    from localize import train as train_mod

    def no_build(*a, **k):  # nothing may be built before the config is checked
        raise AssertionError("built before the config was checked")

    monkeypatch.setattr(train_mod, "build", no_build)
    overrides = FAST + NER + bad
    with pytest.raises(ValueError) as err:
        train_mod.train(compose_cfg(overrides, tmp_path / "run"))
    msg = str(err.value)
    assert expected in msg and "\n" not in msg
    fixed = compose_cfg(_replace(overrides, suggested(msg)), tmp_path / "run")
    check_config(fixed)  # the whole config passes once the fix is applied


def test_every_knob_example_passes_its_own_check():
    from localize.validate import _problem

    assert all(_problem(k, k.example) is None for k in KNOBS.values())


@pytest.mark.parametrize("bad", [["trainer.max_epochs=abc"], ["data.batch_size=abc"]])
def test_type_fix_gives_a_finished_run(bad, tmp_path):
    """The issue's two cases end to end: the fixed command trains and writes its record."""
    from localize.train import train

    overrides = FAST + NER + bad
    with pytest.raises(ValueError) as err:
        train(compose_cfg(overrides, tmp_path / "bad"))
    record = train(compose_cfg(_replace(overrides, suggested(str(err.value))), tmp_path / "fixed"))
    assert (tmp_path / "fixed" / "run.json").exists() and record["metrics"]


def test_evaluate_and_predict_check_their_knobs(tmp_path):
    from localize.evaluate import evaluate
    from localize.predict import predict

    ev = ["model=tiny_random", "+locale=ja", "task=ner", "trainer=cpu", "logger=none", "+trainer.limit_test_batches=1",
          "data.eval_batch_size=abc"]
    with pytest.raises(ValueError, match="data.eval_batch_size='abc' is not an integer") as err:
        evaluate(compose_cfg(ev, tmp_path / "ev", config_name="evaluate"))
    rec = evaluate(compose_cfg(_replace(ev, suggested(str(err.value))), tmp_path / "ev2", config_name="evaluate"))
    assert rec["job_type"] == "evaluate"
    with pytest.raises(ValueError, match="batch_size='lots' is not an integer.*Fix: batch_size=32") as err:
        predict(compose_cfg(["batch_size=lots"], config_name="predict"))
    with pytest.raises(ValueError, match="nothing to predict with"):  # past the check: the next error is the run's
        predict(compose_cfg([suggested(str(err.value))], config_name="predict"))


@pytest.mark.parametrize("bad,expected", [(["quantize=int4"], "quantize='int4' is not one of ['int8']"),
                                          (["atol=tiny"], "atol='tiny' is not a number"),
                                          (["overwrite=please"], "overwrite='please' is not true or false")])
def test_export_knobs(bad, expected):
    overrides = ["run=/nowhere", "out=/tmp/nowhere", *bad]
    with pytest.raises(ValueError) as err:
        check_config(compose_cfg(overrides, config_name="export"))
    assert expected in str(err.value)
    check_config(compose_cfg(_replace(overrides, suggested(str(err.value))), config_name="export"))


def test_appended_unknown_key_names_the_nearest_setting(make_cfg):
    cfg = make_cfg(NER + ["+data.batchsize=3"])
    with pytest.raises(ValueError, match=r"data\.batchsize is not a setting of .*NerDataModule.*data\.batch_size") as e:
        build(cfg.data)
    assert "data.batch_size=<value>" in str(e.value)
    assert build(make_cfg(NER + ["data.batch_size=3"]).data).batch_size == 3


# ----------------------------------------------------------------------------- the command line
def _cli(*args: str, module: str = "localize.train", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env or ENV, capture_output=True,
                          text=True, timeout=300)


# Each case starts Python twice (~15 s each on 2 cores): the first in the default set, the rest `slow`.
CLI_CASES = [
    pytest.param(["task=nope"], "localize: In 'train': Could not find 'task/nope'. Available options in 'task': "
                 "classification, ner, sentiment, translation", "task=ner", id="task=nope"),
    pytest.param(["trainer.max_epochs=["], "localize: no viable alternative at input '['", "trainer.max_epochs=1",
                 id="unparsable", marks=pytest.mark.slow),
    pytest.param(["data.batchsize=3"], "localize: data.batchsize is not a config key. Fix: data.batch_size=3", None,
                 id="misspelt-key", marks=pytest.mark.slow),
    pytest.param(["trainer.max_epochs=abc"], "localize: trainer.max_epochs='abc' is not an integer (training epochs). "
                 "Fix: trainer.max_epochs=3", None, id="wrong-type", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("bad,line,fix", CLI_CASES)
def test_cli_user_error_is_one_line(bad, line, fix, tmp_path):
    """One stderr line, exit 2, no traceback; the fixed command gets past it (to the next mistake,
    ``data.eval_batch_size=x``, kept there so that the check costs no training)."""
    base = ["+locale=ja", "model=tiny_random", "logger=none", f"paths.log_dir={tmp_path}"]
    r = _cli(*base, *bad)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == line.strip() or r.stderr.strip().startswith(line), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    fixed = fix or suggested(r.stderr)
    r2 = _cli(*base, fixed, "data.eval_batch_size=x")
    assert r2.returncode == 2 and "data.eval_batch_size='x' is not an integer" in r2.stderr, r2.stderr


def test_hydra_full_error_keeps_the_traceback(tmp_path):
    r = _cli("+locale=ja", "model=tiny_random", "logger=none", f"paths.log_dir={tmp_path}", "data.batch_size=abc",
             env={**ENV, "HYDRA_FULL_ERROR": "1"})
    assert r.returncode != 0 and "Traceback" in r.stderr and "data.batch_size='abc'" in r.stderr


def test_a_bug_keeps_its_traceback(tmp_path):
    """Only our own errors are user errors: a ValueError raised by a library keeps its traceback."""
    from localize.cli import cli

    def deep():
        json.loads("{")  # a ValueError raised inside the json package

    with pytest.raises(ValueError):
        cli(deep)
    from localize.data.ner_readers import read_conll

    with pytest.raises(SystemExit) as e:  # a DataError raised by our reader: one line
        cli(lambda: read_conll(tmp_path / "nope.conll"))
    assert e.value.code == 2
    assert os.environ.get("HYDRA_FULL_ERROR") is None  # restored


# ----------------------------------------------------------------------------- data messages
def _ner(tmp_path, text: str, extra: list[str] = ()) -> list[str]:
    f = tmp_path / "d.conll"
    f.write_text(text, encoding="utf-8")
    return FAST + NER + [f"data.path={f}", "data.split_sizes=[2,1,1]", *extra]


def _load(overrides, tmp_path):
    dm = build(compose_cfg(overrides, tmp_path / "run").data)
    dm.label_names
    return dm


SENTS = ["東京\tB-LOC", "に\tO", "", "大阪\tB-LOC", "", "京都\tB-LOC", "", "行く\tO", ""]


def test_label_only_in_test_split_fix_works(tmp_path):
    # 4 sentences, split [2,1,1]: the ORG sentence is wherever the seed puts it; put ORG everywhere but train.
    lines = ["東京\tB-LOC", "", "大阪\tB-LOC", "", "京都\tB-ORG", "", "奈良\tB-ORG", ""]
    overrides = _ner(tmp_path, "\n".join(lines), ["data.split_sizes=[2,1,1]"])
    for seed in range(20):  # a seed whose train split holds no ORG
        try:
            _load(overrides + [f"seed={seed}"], tmp_path)
        except DataError as e:
            msg = str(e)
            break
    else:
        pytest.fail("no seed left ORG out of train")
    assert "labels never seen in train" in msg and "task.labels" not in msg and "label_map" not in msg
    fix = suggested(msg)
    assert fix == "data.labels=[O,B-LOC,I-LOC,B-ORG,I-ORG]"
    dm = _load(overrides + [f"seed={seed}", fix], tmp_path)
    assert dm.label_names == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def test_fixed_label_set_missing_a_label_fix_works(tmp_path):
    overrides = _ner(tmp_path, "\n".join(SENTS + ["太郎\tB-PSN", ""]),
                     ["data.labels=[O,B-LOC,I-LOC]", "data.split_sizes=[3,1,1]"])
    with pytest.raises(DataError, match="unknown labels: 'B-PSN'") as err:
        _load(overrides, tmp_path)
    fix = suggested(str(err.value))
    assert fix == "data.labels=[O,B-LOC,I-LOC,B-PSN,I-PSN]"
    assert "B-PSN" in _load(_replace(overrides, fix), tmp_path).label_names


def test_other_separator_fix_works(tmp_path):
    overrides = _ner(tmp_path, "\n".join(s.replace("\t", "|") for s in SENTS))
    with pytest.raises(DataError, match=r"d\.conll:1: expected at least 2 columns.*got 1.*data\.sep='\|'") as err:
        _load(overrides, tmp_path)
    dm = _load(overrides + [suggested(str(err.value))], tmp_path)
    assert dm.splits["train"][0]["tokens"][0] in {"東京", "に", "大阪", "京都", "行く"}


def test_missing_tag_column_fix_works(tmp_path):
    broken = SENTS[:3] + ["大阪"] + SENTS[4:]
    overrides = _ner(tmp_path, "\n".join(broken))
    with pytest.raises(DataError, match=r"d\.conll:4: expected at least 2 columns.*Fix: add the missing column") as err:
        _load(overrides, tmp_path)
    assert "sep/token_col/tag_col" not in str(err.value)
    _ner(tmp_path, "\n".join(SENTS))  # the fix: add the tag column
    assert _load(overrides, tmp_path).label_names == ["O", "B-LOC", "I-LOC"]


def test_space_inside_a_tab_separated_token_is_not_cut(tmp_path):
    lines = ["New York\tB-LOC", "is\tO", "", "Tokyo\tB-LOC", "", "Osaka\tB-LOC", "", "Kyoto\tB-LOC", ""]
    overrides = _ner(tmp_path, "\n".join(lines))
    with pytest.raises(DataError, match=r"d\.conll:1: 1 line\(s\) have tab-separated columns.*'New York'.*only "
                                        r"'New' would be kept.*data\.sep=tab") as err:
        _load(overrides, tmp_path)
    dm = _load(overrides + [suggested(str(err.value))], tmp_path)
    tokens = [t for exs in dm.splits.values() for ex in exs for t in ex["tokens"]]
    assert "New York" in tokens


def test_boolean_span_offset_is_refused(tmp_path):
    f = tmp_path / "d.jsonl"
    good = [{"text": "東京に行く", "entities": [[0, 2, "LOC"]]}] * 4
    bad = good[:3] + [{"text": "大阪に行く", "entities": [[True, 2, "LOC"]]}]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in bad), encoding="utf-8")
    overrides = FAST + NER + [f"data.path={f}", "data.split_sizes=[2,1,1]"]
    with pytest.raises(DataError, match=r"d\.jsonl:4: cannot read span \[True, 2, 'LOC'\].*not booleans.*integer"):
        _load(overrides, tmp_path)
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in good), encoding="utf-8")  # the fix
    assert _load(overrides, tmp_path).label_names == ["O", "B-LOC", "I-LOC"]


def _cls(tmp_path, rows: list[tuple[str, str]], extra: list[str] = ()) -> list[str]:
    f = tmp_path / "d.csv"
    f.write_text("text,label\n" + "\n".join(f"{t},{lab}" for t, lab in rows) + "\n", encoding="utf-8")
    return FAST + ["+locale=ja", "task=classification", f"data.path={f}", *extra]


def test_one_number_written_two_ways_is_refused(tmp_path):
    rows = [(f"文{i}", "1" if i % 3 else "0") for i in range(20)] + [("文x", "1.0"), ("文y", "1.0")]
    overrides = _cls(tmp_path, rows)
    with pytest.raises(DataError, match=r"the label 1 is written 2 ways: '1' x13.*'1\.0' x2.*Fix: write it one way.*"
                                        r"replace '1\.0' with '1'"):
        _load(overrides, tmp_path)
    _cls(tmp_path, [(t, "1" if lab == "1.0" else lab) for t, lab in rows])  # the fix, applied to the file
    assert _load(overrides, tmp_path).label_names == ["0", "1"]


def test_cls_label_only_outside_train_fix_works(tmp_path):
    rows = [(f"文{i}", "pos" if i % 2 else "neg") for i in range(20)]
    d = tmp_path / "splits"
    d.mkdir()
    (d / "train.csv").write_text("text,label\n" + "\n".join(f"{t},{lab}" for t, lab in rows) + "\n", encoding="utf-8")
    (d / "dev.csv").write_text("text,label\nほか,neu\nまた,pos\n", encoding="utf-8")
    (d / "test.csv").write_text("text,label\nさら,neg\n", encoding="utf-8")
    overrides = FAST + ["+locale=ja", "task=classification", f"data.path={d}"]
    with pytest.raises(DataError, match=r"\[validation\]: labels \['neu'\] never occur in train") as err:
        _load(overrides, tmp_path)
    fix = suggested(str(err.value))
    assert fix == "data.labels=[neg,pos,neu]"
    assert _load(overrides + [fix], tmp_path).label_names == ["neg", "pos", "neu"]


def test_class_weight_of_an_empty_class_fix_works(tmp_path):
    rows = [(f"文{i}", "pos" if i % 2 else "neg") for i in range(20)]
    overrides = _cls(tmp_path, rows, ["data.use_class_weights=true", "data.labels=[neg,pos,neu]"])
    with pytest.raises(DataError, match=r"\['neu'\] have no training examples.*data\.use_class_weights=false") as err:
        _load(overrides, tmp_path).module_kwargs()
    assert _load(_replace(overrides, suggested(str(err.value))), tmp_path).module_kwargs()["class_weights"] is None


# ----------------------------------------------------------------------------- run dirs and checkpoints
@pytest.fixture
def run_copy(lora_run, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(lora_run, dst)
    return dst


def _eval(run, out, extra=()):
    return compose_cfg([f"run={run}", "trainer=cpu", "logger=none", *extra], out, config_name="evaluate")


def test_missing_model_dir_fix_works(run_copy, tmp_path):
    from localize.evaluate import evaluate

    shutil.rmtree(run_copy / "model")
    with pytest.raises(FileNotFoundError, match=r"holds no saved model.*Fix: retrain.*python -m localize\.evaluate "
                                                r"run=.* ckpt_path=.*best\.ckpt") as err:
        evaluate(_eval(run_copy, tmp_path / "ev"))
    fix = re.search(r"ckpt_path=(\S+)", str(err.value))[0]
    rec = evaluate(_eval(run_copy, tmp_path / "ev2", [fix]))
    assert rec["metrics"]["test/f1"] >= 0


def _flip_pickle_byte(path) -> None:
    """Flip one byte in the middle of the checkpoint's data.pkl (the zip stays valid): the first from the
    middle on that makes the file unreadable (a flip inside a string or a number can go unnoticed)."""
    from localize.models.weights import load_checkpoint

    clean = path.read_bytes()
    info = next(i for i in zipfile.ZipFile(path).infolist() if i.filename.endswith("data.pkl"))
    name_len, extra_len = struct.unpack("<HH", clean[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    for offset in range(info.compress_size // 2, info.compress_size):
        data = bytearray(clean)
        data[start + offset] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            load_checkpoint(str(path), mmap=True)
        except ValueError:
            return
    raise AssertionError("no flipped byte made the checkpoint unreadable")


def test_flipped_checkpoint_byte_gets_our_message_not_torchs(run_copy, tmp_path):
    from localize.evaluate import evaluate
    from localize.train import resume_checkpoint

    _flip_pickle_byte(run_copy / "checkpoints" / "last.ckpt")
    with pytest.raises(ValueError) as err:
        resume_checkpoint(str(run_copy))
    msg = str(err.value)
    assert "last.ckpt" in msg and "weights_only" not in msg and "\n" not in msg
    assert "best.ckpt" in msg  # the fix: another checkpoint of the run
    assert resume_checkpoint(str(run_copy / "checkpoints" / "best.ckpt")).endswith("best.ckpt")
    with pytest.raises(ValueError) as err:
        evaluate(_eval(run_copy, tmp_path / "ev", [f"ckpt_path={run_copy / 'checkpoints' / 'last.ckpt'}"]))
    assert "weights_only" not in str(err.value) and "best.ckpt" in str(err.value)
    rec = evaluate(_eval(run_copy, tmp_path / "ev2", [f"ckpt_path={run_copy / 'checkpoints' / 'best.ckpt'}"]))
    assert rec["metrics"]["test/f1"] >= 0


# ----------------------------------------------------------------------------- silent changes, counted
def test_repaired_tags_and_truncation_are_counted_and_recorded(tmp_path, caplog):
    from localize.train import train

    long = "\n".join(f"語{i}\tO" for i in range(40))
    lines = SENTS + ["東京\tI-LOC", "", long, ""]  # one I- without B- (repaired), one sentence past max_length
    overrides = _ner(tmp_path, "\n".join(lines), ["data.max_length=16", "data.split_sizes=[4,1,1]"])
    with caplog.at_level(logging.WARNING):
        record = train(compose_cfg(overrides, tmp_path / "run"))
    data = json.loads((tmp_path / "run" / "run.json").read_text())["data"]
    assert data == record["data"]
    assert data["repaired_tags"] == 1
    assert sum(data["truncated"].values()) == 1
    text = caplog.text
    assert "1 IOB2 tags repaired" in text and "cut to data.max_length=16 tokens" in text


def test_hironsan_repairs_are_recorded(make_cfg):
    dm = build(make_cfg(NER).data)
    dm.label_names
    assert dm.data_info["repaired_tags"] == 2  # the two broken tags of the shipped corpus


def test_cls_character_cut_and_leakage_drop_are_counted(tmp_path, caplog):
    rows = [(f"文{i}" + "長" * (30 if i < 3 else 0), "pos" if i % 2 else "neg") for i in range(20)]
    d = tmp_path / "splits"
    d.mkdir()
    for name, part in (("train", rows + [("重複", "pos")] * 2), ("dev", [("重複", "pos"), ("別", "neg")]),
                       ("test", [("他", "pos"), ("又", "neg")])):  # 重複 in train and dev: its train copies go
        (d / f"{name}.csv").write_text("text,label\n" + "\n".join(f"{t},{lab}" for t, lab in part) + "\n",
                                       encoding="utf-8")
    overrides = FAST + ["+locale=ja", "task=classification", f"data.path={d}", "data.max_chars=20"]
    with caplog.at_level(logging.WARNING):
        dm = _load(overrides, tmp_path)
    info = dm.data_info
    assert sum(info["cut_to_max_chars"].values()) == 3
    assert info["dropped"]["train_also_in_dev_or_test"] == info["leakage_removed"]["train_docs"] == 2
    assert "longer than data.max_chars=20 are cut" in caplog.text


def test_translation_filter_counts_dropped_pairs():
    from localize.data.translation import TranslationDataModule

    dm = TranslationDataModule.__new__(TranslationDataModule)
    dm.max_chars, dm.drop_identical = 10, True
    pairs = [{"id": str(i), "source": s, "target": t} for i, (s, t) in
             enumerate([("Open", "開く"), ("Open", "Open"), ("a\nb", "x"), ("x" * 20, "y"), ("", "z")])]
    info: dict = {}
    assert len(dm._filter(pairs, info)) == 1
    assert info["dropped"] == {"identical": 1, "multi_line": 1, "longer_than_max_chars": 1, "empty": 1}
