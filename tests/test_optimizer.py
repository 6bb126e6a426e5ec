"""The default AdamW runs torch's fused kernel (conf/module/default.yaml): the same update as torch's per-tensor
default, to float rounding, so the speed-up (benchmarks/profile_step.py) changes no result beyond rounding."""
from __future__ import annotations

import pytorch_lightning as pl
import torch

from conftest import FAST, NER, compose_cfg
from localize.utils import build


def _fit(tmp_path, fused: str):
    cfg = compose_cfg(FAST + NER + ["adapter=full", f"module.optimizer.fused={fused}", "seed=3"], tmp_path / fused)
    dm = build(cfg.data)
    dm.setup("fit")
    pl.seed_everything(3)
    module = build(cfg.module, label_names=dm.label_names)
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    pl.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False, gradient_clip_val=0.5,
               limit_val_batches=0, enable_progress_bar=False, enable_model_summary=False).fit(module, datamodule=dm)
    return module, before


def test_the_default_optimizer_is_fused_and_updates_as_torchs_default(tmp_path):
    fused, before = _fit(tmp_path, "true")
    assert fused.trainer.optimizers[0].defaults["fused"] is True
    plain, _ = _fit(tmp_path, "null")
    assert not plain.trainer.optimizers[0].defaults["fused"]
    a, b = dict(fused.model.named_parameters()), dict(plain.model.named_parameters())
    moved = [n for n in a if not torch.equal(a[n], before[n])]
    assert len(moved) > len(a) // 2  # the steps trained the model, embeddings included
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=1e-4, atol=1e-6, msg=n)


def test_bf16_mixed_with_clipping_takes_the_foreach_kernel_and_trains(tmp_path):
    """Lightning's mixed-precision plugin refuses gradient clipping with a fused optimizer; the module asks for
    the foreach kernel there instead of failing the run."""
    cfg = compose_cfg(FAST + NER + ["adapter=lora", "trainer.precision=bf16-mixed", "seed=3"], tmp_path)
    dm = build(cfg.data)
    dm.setup("fit")
    module = build(cfg.module, label_names=dm.label_names)
    pl.Trainer(max_steps=2, accelerator="cpu", precision="bf16-mixed", logger=False, enable_checkpointing=False,
               gradient_clip_val=0.5, limit_val_batches=0, enable_progress_bar=False,
               enable_model_summary=False).fit(module, datamodule=dm)
    opt = module.trainer.optimizers[0]
    assert opt.defaults["fused"] is False and opt.defaults["foreach"] is True
    assert module.trainer.global_step == 2
