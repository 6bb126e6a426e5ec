"""Bad adapter/model combinations fail early with one message that names the fix."""
from __future__ import annotations

import peft
import pytest
from transformers import DistilBertConfig, DistilBertForTokenClassification

from localize.adapters import apply_adapter
from localize.train import train


def test_prefix_on_backbone_without_cache_is_refused():
    model = DistilBertForTokenClassification(DistilBertConfig(
        vocab_size=100, dim=16, n_layers=1, n_heads=2, hidden_dim=32, num_labels=3))
    with pytest.raises(ValueError, match="adapter=lora"):
        apply_adapter(model, peft.PrefixTuningConfig(task_type="TOKEN_CLS", num_virtual_tokens=4))


def test_adalora_with_too_few_steps(make_cfg):
    cfg = make_cfg(["+locale=ja", "task=ner", "adapter=adalora", "trainer.limit_train_batches=1"])
    with pytest.raises(ValueError, match="AdaLoRA needs more optimizer steps"):
        train(cfg)


def test_lora_targets_missing_from_model(make_cfg):
    cfg = make_cfg(["+locale=ja", "task=ner", "adapter=lora", "adapter.peft.target_modules=[nonexistent]"])
    with pytest.raises(ValueError, match="target_modules"):
        train(cfg)


def test_label_outside_scheme_names_file_and_line(make_cfg, tmp_path):
    train_file = tmp_path / "train.conll"
    lines = ["東京\tB-LOC", "に\tO", "", "大阪\tB-LOC", "", "京都\tB-LOC", "", "行く\tX-WRONG", ""]
    train_file.write_text("\n".join(lines), encoding="utf-8")
    cfg = make_cfg(["+locale=ja", "task=ner", f"data.path={train_file}", "data.split_sizes=[2,1,1]"])
    with pytest.raises(ValueError, match=r"train.conll.*8|X-WRONG"):
        train(cfg)


def test_label_never_in_train_fix_gives_a_finished_run(make_cfg, tmp_path):
    """The message's fix (the full ``data.labels=[...]``, pasted as an override) trains to the end."""
    import re

    train_file = tmp_path / "train.conll"
    lines = ["東京\tB-LOC", "", "大阪\tB-LOC", "", "京都\tB-LOC", "", "山田\tB-PSN", "", "佐藤\tB-PSN", ""]
    train_file.write_text("\n".join(lines), encoding="utf-8")
    overrides = ["+locale=ja", "task=ner", f"data.path={train_file}", "data.split_sizes=[3,1,1]"]
    seed = next(s for s in range(50) if all(  # a split whose train sentences are all LOC
        "PSN" not in ex["tags"][0] for ex in _split(lines, s)))
    with pytest.raises(ValueError, match="labels never seen in train") as err:
        train(make_cfg(overrides + [f"seed={seed}"]))
    fix = re.search(r"data\.labels=\[[^\]]*\]", str(err.value))[0]
    assert fix == "data.labels=[O,B-LOC,I-LOC,B-PSN,I-PSN]"
    record = train(make_cfg(overrides + [f"seed={seed}", fix]))
    assert record["labels"] == ["O", "B-LOC", "I-LOC", "B-PSN", "I-PSN"]


def _split(lines, seed):
    from localize.data.sources import split_examples

    sents = [{"tags": [line.split("\t")[1]]} for line in lines if line]
    return split_examples(sents, (3, 1, 1), seed)["train"]
