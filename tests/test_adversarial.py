"""FGM adversarial training (``+adversarial=fgm``): the perturbation raises the loss it is taken against, it
trains through frozen word embeddings without touching their table, and at epsilon 0 it changes nothing."""
from __future__ import annotations

import pytorch_lightning as pl
import torch

from localize.config import compose
from localize.models.adversarial import FGMCallback
from localize.utils import build

from conftest import FAST, NER


def _fit(tmp_path, callbacks, adapter="full_frozen_emb"):
    cfg = compose(FAST + NER + [f"adapter={adapter}", "seed=5"], out_dir=str(tmp_path))
    pl.seed_everything(5)
    dm = build(cfg.data)
    module = build(cfg.module, **dm.module_kwargs())
    table = module.model.get_input_embeddings().weight.detach().clone()
    trainer = pl.Trainer(max_steps=2, limit_train_batches=2, limit_val_batches=1, logger=False, callbacks=callbacks,
                         enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu", deterministic=True)
    trainer.fit(module, datamodule=dm)
    return module, table, trainer


def test_the_adversarial_loss_is_higher_and_the_frozen_table_stays(tmp_path):
    module, table, trainer = _fit(tmp_path, [FGMCallback(epsilon=2.0)])
    m = trainer.callback_metrics
    assert float(m["train/adv_loss"]) > float(m["train/loss"])  # the step went uphill, as FGM means to
    assert torch.equal(module.model.get_input_embeddings().weight, table)  # frozen table untouched


def test_epsilon_zero_is_plain_training_and_epsilon_changes_the_weights(tmp_path):
    plain, _, _ = _fit(tmp_path / "a", [])
    zero, _, _ = _fit(tmp_path / "b", [FGMCallback(epsilon=0.0)])
    adv, _, _ = _fit(tmp_path / "c", [FGMCallback(epsilon=2.0)])
    a, b, c = (dict(m.model.named_parameters()) for m in (plain, zero, adv))
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a if a[n].requires_grad)


def test_the_config_group_adds_the_callback():
    cfg = compose(NER + ["+adversarial=fgm", "callbacks.fgm.epsilon=0.5"], out_dir="/tmp/unused")
    assert cfg.callbacks.fgm._target_ == "localize.models.adversarial.FGMCallback" and cfg.callbacks.fgm.epsilon == 0.5
