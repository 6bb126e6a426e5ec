"""What this machine runs fast: the precision ``trainer.precision`` defaults to, and what a run records of it.

The default trainer config says ``precision: ${auto_precision:${trainer.accelerator}}``: bf16 autocast
(``bf16-mixed``: fp32 master weights, bf16 matmuls) where the matrix units do bf16 natively — a CPU with
AMX-BF16 or AVX512-BF16, a CUDA GPU with bf16 — and ``32-true`` elsewhere, where bf16 is emulated and slower
than fp32. An explicit ``trainer.precision=32-true`` (or any other value) replaces the interpolation and wins.
"""
from __future__ import annotations

import os
import platform
from typing import Any

BF16_CPU_FEATURES = ("amx_bf16", "avx512_bf16")


def cpu_bf16_features() -> list[str]:
    """The CPU's native bf16 matmul features torch detects (empty: bf16 would be emulated)."""
    import torch

    caps = getattr(torch.cpu, "get_capabilities", lambda: {})()
    return [f for f in BF16_CPU_FEATURES if caps.get(f)]


def auto_precision(accelerator: str = "auto") -> str:
    """``bf16-mixed`` where the device that will run has native bf16 matmuls, else ``32-true``."""
    import torch

    accelerator = str(accelerator).lower()
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    if accelerator in ("cpu", "auto"):
        return "bf16-mixed" if cpu_bf16_features() else "32-true"
    return "32-true"  # mps, tpu: let the user choose


def set_threads(threads: int | None) -> None:
    """``threads`` compute threads for this process (None: leave torch's default). OMP_NUM_THREADS is set
    too, so Lightning's DDP launcher, which gives each rank ``cores // ranks`` unless it is set, keeps it."""
    import torch

    if threads is None:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(int(threads))


def machine_info(trainer: Any = None) -> dict[str, Any]:
    """run.json's ``machine``: the platform, the precision the run used and what the detection found, and
    the threads each process ran (Lightning gives each DDP rank ``cores // ranks`` unless OMP_NUM_THREADS
    is set)."""
    import torch

    return {
        "platform": platform.platform(),
        "precision": str(getattr(trainer, "precision", None)) if trainer is not None else None,
        "auto_precision": auto_precision("auto"),  # what the default would pick on this machine
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16_features": cpu_bf16_features(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpus": os.cpu_count(),
        "world_size": getattr(trainer, "world_size", 1) if trainer is not None else 1,
    }
