"""Generation under autocast (bf16-mixed) casts each frozen weight once per generate() call."""
from __future__ import annotations

import contextlib

import torch
from hydra.utils import instantiate

from conftest import compose_cfg
from test_translation import MT, _datamodule


class _CountCasts(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the bf16 copies that autocast makes of the given weights."""

    def __init__(self, weights):
        super().__init__()
        self.ptrs, self.casts = {w.data_ptr() for w in weights}, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default and kwargs.get("dtype") == torch.bfloat16:
            self.casts += args[0].data_ptr() in self.ptrs
        return func(*args, **kwargs)


def test_generation_under_autocast_casts_each_frozen_weight_once(tmp_path, monkeypatch):
    """Lightning's autocast has its weight cache off, so a frozen model was re-cast at every decoding step;
    generate_texts casts once per call, with the same outputs and the frozen weights still frozen."""
    from localize.models import causal_lm

    cfg = compose_cfg(MT + ["adapter=lora", "module.generation.max_new_tokens=4"], tmp_path / "run")
    batch = next(iter(_datamodule(cfg).val_dataloader()))
    module = instantiate(cfg.module).eval()
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    frozen = [p for p in module.parameters() if not p.requires_grad]

    def generate():
        counter = _CountCasts(frozen)
        with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False), counter:
            texts = module.generate_texts(batch["prompt_ids"], batch["prompt_mask"])
        return texts, counter.casts

    cached, cached_casts = generate()
    monkeypatch.setattr(causal_lm, "autocast_weight_cache", lambda model: contextlib.nullcontext())
    plain, plain_casts = generate()
    assert cached == plain
    new_tokens = module.generation_speed["positions"] // (2 * len(batch["index"]))  # decoding steps per call
    assert new_tokens > 1 and plain_casts == new_tokens * cached_casts  # each frozen weight: once, not per step
    assert {n for n, p in module.named_parameters() if p.requires_grad} == trainable
