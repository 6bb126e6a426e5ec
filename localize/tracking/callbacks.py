"""Run statistics every run records: wall time, s/epoch, training tokens/s, peak memory."""
from __future__ import annotations

import resource
import time

import pytorch_lightning as pl
import torch


def peak_memory_mb() -> dict[str, float]:
    """Peak RSS (CPU) since the last ``reset_peak_memory`` and peak allocated CUDA memory, in MB."""
    out = {"peak_rss_mb": _peak_rss_kb() / 1024}
    if torch.cuda.is_available():
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


_scope = "process"  # what peak_rss_mb covers: "job" once a reset worked, else the process lifetime


def reset_peak_memory() -> bool:
    """Start a new peak: one process runs many jobs in a Hydra multirun, and a lifetime peak
    would charge each job with the largest earlier one. Linux resets VmHWM via clear_refs; some
    kernels and sandboxes refuse or ignore it, so check, and say so in ``peak_rss_scope()``."""
    global _scope
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        hwm, rss = _status_kb("VmHWM"), _status_kb("VmRSS")
        ok = hwm is not None and rss is not None and hwm <= rss + 4096  # right after a reset HWM == RSS
    except OSError:  # not Linux, or not permitted
        ok = False
    _scope = "job" if ok else "process"
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    return ok


def peak_rss_scope() -> str:
    """``"job"`` if the last reset worked, ``"process"`` if peak RSS is the process lifetime peak."""
    return _scope


def _status_kb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def _peak_rss_kb() -> float:
    hwm = _status_kb("VmHWM")
    return hwm if hwm is not None else float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class RunStatsCallback(pl.Callback):
    """Times training epochs and counts non-pad training tokens (``attention_mask`` sum)."""

    def __init__(self) -> None:
        self.stats: dict[str, float] = {}
        self._tokens = 0
        self._train_time = 0.0
        self._epoch_times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._tokens += int(batch["attention_mask"].sum())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # Includes the validation pass that Lightning runs inside the epoch; the train-only time
        # is epoch time minus validation, tracked below.
        self._epoch_times.append(time.perf_counter() - self._epoch_start)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._val_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.training or trainer.state.fn == "fit":
            self._train_time -= time.perf_counter() - self._val_start

    def on_fit_end(self, trainer, pl_module) -> None:
        train_time = sum(self._epoch_times) + self._train_time
        self.stats = {
            "epochs": len(self._epoch_times),
            "s_per_epoch": train_time / max(len(self._epoch_times), 1),
            "train_tokens": self._tokens,
            "train_tokens_per_s": self._tokens / max(train_time, 1e-9),
            **peak_memory_mb(),
        }
        for logger in trainer.loggers:
            logger.log_metrics({f"perf/{k}": v for k, v in self.stats.items()}, step=trainer.global_step)
