"""What must be stored to reproduce a localized model, and how big it is."""
from __future__ import annotations

import os
from typing import Callable
import shutil
import tempfile

import torch
from safetensors.torch import save_file


def atomic_folder(out_dir: str, write: Callable[[str], None]) -> None:
    """``write(tmp)`` fills a temp folder that then replaces ``out_dir``: a crash never leaves a
    half-written folder that looks whole."""
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-")
    try:
        write(tmp)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def save_trainable(module, out_dir: str) -> dict[str, float]:
    """Save the trainable state (adapter + head for PEFT; all weights for full FT) as safetensors.

    For peft models ``save_pretrained`` writes the standard adapter folder that
    ``PeftModel.from_pretrained`` loads. Returns sizes in MB.
    """
    model = module.model
    def write(tmp: str) -> None:
        if hasattr(model, "peft_config"):
            model.save_pretrained(tmp)
        else:
            state = {k: v.contiguous() for k, v in module.trainable_state_dict().items()}
            save_file(state, os.path.join(tmp, "trainable.safetensors"),
                      metadata={"base_model": str(module.hparams.base_model)})

    atomic_folder(out_dir, write)
    stored = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out_dir) for f in fs)
    full = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"stored_mb": stored / 2**20, "full_model_mb": full / 2**20}


def tensor_bytes(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())
