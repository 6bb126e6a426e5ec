"""The default AdamW runs torch's fused kernel (conf/module/default.yaml): the same update as torch's per-tensor
default, to float rounding, so the speed-up (benchmarks/profile_step.py) changes no result beyond rounding."""
from __future__ import annotations

import pytorch_lightning as pl
import torch

from conftest import FAST, NER, compose_cfg
from localize.models.optim import lightning_kernel
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


def _fit_bf16(tmp_path, fused: str, clip: float | None):
    cfg = compose_cfg(FAST + NER + ["adapter=lora", f"module.optimizer.fused={fused}", "seed=3"], tmp_path / fused)
    dm = build(cfg.data)
    dm.setup("fit")
    pl.seed_everything(3)
    module = build(cfg.module, label_names=dm.label_names)
    pl.Trainer(max_steps=3, accelerator="cpu", precision="bf16-mixed", logger=False, enable_checkpointing=False,
               gradient_clip_val=clip, limit_val_batches=0, enable_progress_bar=False,
               enable_model_summary=False).fit(module, datamodule=dm)
    return module


def test_bf16_mixed_with_clipping_keeps_the_fused_kernel_and_clips_as_the_per_tensor_kernel_does(tmp_path):
    """Lightning's mixed-precision plugin refuses gradient clipping with a fused optimizer, for fear of scaled
    gradients; bf16-mixed has no grad scaler, so the module clips itself and keeps the fused kernel: the same
    weights as torch's per-tensor kernel (fused=false) under the same clipping, and other weights than without clipping."""
    fused = _fit_bf16(tmp_path / "a", "true", 1e-3)
    opt = fused.trainer.optimizers[0]
    assert opt.defaults["fused"] is True and fused.trainer.global_step == 3
    per_tensor = _fit_bf16(tmp_path / "b", "false", 1e-3)
    assert per_tensor.trainer.optimizers[0].defaults["fused"] is False
    unclipped = _fit_bf16(tmp_path / "c", "true", None)
    a, b, c = (dict(m.model.named_parameters()) for m in (fused, per_tensor, unclipped))
    trained = [n for n, p in a.items() if p.requires_grad]
    for n in trained:
        torch.testing.assert_close(a[n], b[n], rtol=1e-4, atol=1e-6, msg=n)
    assert any(not torch.allclose(a[n], c[n], rtol=1e-4, atol=1e-6) for n in trained)  # clipping acted


def test_a_grad_scaler_with_clipping_takes_the_foreach_kernel():
    """Under 16-mixed's grad scaler the fused step unscales inside, after clipping: the foreach kernel instead."""
    from types import SimpleNamespace
    import functools

    factory = functools.partial(torch.optim.AdamW, fused=True)
    scaled = SimpleNamespace(gradient_clip_val=1.0, precision="16-mixed", precision_plugin=SimpleNamespace(scaler=object()))
    assert lightning_kernel(factory, scaled).keywords == {"fused": False, "foreach": True}
    bf16 = SimpleNamespace(gradient_clip_val=1.0, precision="bf16-mixed", precision_plugin=SimpleNamespace(scaler=None))
    assert lightning_kernel(factory, bf16) is factory
    assert lightning_kernel(factory, None) is factory
