"""What must be stored to reproduce a localized model, and how big it is."""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import torch
from safetensors.torch import load_file, save_file

from localize.tracking.atomic import WriteFailed, atomic_folder

# A run dir's stored model: <run dir>/model/ holds a peft adapter folder (adapter_config.json + weights)
# or, for full fine-tuning, trainable.safetensors.
MODEL_DIR = "model"
PEFT_CONFIG = "adapter_config.json"
FULL_WEIGHTS = "trainable.safetensors"


def save_trainable(module, out_dir: str) -> dict[str, float]:
    """Save the trainable state (adapter + head for PEFT; all weights for full FT) as safetensors.

    For peft models ``save_pretrained`` writes the standard adapter folder that
    ``PeftModel.from_pretrained`` loads. Returns sizes in MB.
    """
    model = module.model
    try:
        with atomic_folder(out_dir) as tmp:  # a crash never leaves a half-written folder that looks whole
            if hasattr(model, "peft_config"):
                model.save_pretrained(tmp)
            else:
                state = {k: v.contiguous() for k, v in module.trainable_state_dict().items()}
                save_file(state, os.path.join(tmp, FULL_WEIGHTS),
                          metadata={"base_model": str(module.hparams.base_model)})
    except OSError as e:  # disk full, quota, read-only: the temp is gone and out_dir untouched
        raise WriteFailed(e.errno, f"could not save the model to {out_dir} ({e.strerror or e}); nothing was written "
                                  f"there and the run has no run.json. Fix: free space on that disk, then "
                                  f"python -m localize.train resume=<run dir> (its checkpoints are kept)") from e
    stored = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out_dir) for f in fs)
    full = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"stored_mb": stored / 2**20, "full_model_mb": full / 2**20}


def tensor_bytes(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


def _dir_mb(path: str, suffixes: tuple[str, ...] = (".safetensors", ".bin", ".json")) -> float:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if f.endswith(suffixes))
    return total / 2**20


def storage_report(runs: Mapping[str, str] | Sequence[str], full_model_mb: float | None = None) -> dict[str, Any]:
    """Disk needed to serve N locales: N fully fine-tuned models vs one backbone + N adapters.

    Args:
        runs: ``{locale: run dir}`` (or a list of run dirs) of adapter runs on one backbone.
        full_model_mb: size of one full model; default: the runs' recorded ``full_model_mb``
            (fp32 parameters of backbone + head) minus the adapter's own tensors, else the size of a
            full fine-tune's ``model/`` folder.

    Returns:
        ``n``, ``full_model_mb``, ``n_full_models_mb`` (N x full), ``adapters_mb`` (per run: the
        ``model/`` folder's weights + config), ``backbone_plus_adapters_mb`` and ``saving_factor``
        (N full / (backbone + N adapters)).

    Raises:
        FileNotFoundError: a run dir without ``run.json`` or ``model/``.
        ValueError: no run recorded a full-model size and none was given.
    """
    runs = dict(runs) if isinstance(runs, Mapping) else {os.path.basename(str(r)): r for r in runs}
    adapters, full = {}, full_model_mb
    for name, run_dir in runs.items():
        model_dir, record_path = os.path.join(run_dir, "model"), os.path.join(run_dir, "run.json")
        if not (os.path.isdir(model_dir) and os.path.exists(record_path)):
            raise FileNotFoundError(f"{run_dir} is not a finished run (run.json + model/): pass finished run dirs")
        adapters[name] = _dir_mb(model_dir)
        if full is None:
            with open(record_path) as f:
                recorded = (json.load(f).get("storage") or {}).get("full_model_mb")
            weights = os.path.join(model_dir, "adapter_model.safetensors")
            if recorded and os.path.exists(weights):  # recorded over the peft-wrapped model
                full = recorded - tensor_bytes(load_file(weights)) / 2**20
            elif os.path.exists(os.path.join(model_dir, FULL_WEIGHTS)):
                full = _dir_mb(model_dir)
    if full is None:
        raise ValueError("give full_model_mb= (no run recorded the full model size)")
    n, total_adapters = len(adapters), sum(adapters.values())
    return {"n": n, "full_model_mb": full, "n_full_models_mb": n * full, "adapters_mb": adapters,
            "adapter_mb_mean": total_adapters / max(n, 1), "backbone_plus_adapters_mb": full + total_adapters,
            "saving_factor": n * full / (full + total_adapters) if n else float("nan")}
