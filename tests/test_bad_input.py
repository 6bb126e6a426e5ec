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
