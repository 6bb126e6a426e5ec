"""Callbacks of every run: its statistics (wall time, s/epoch, training tokens/s, peak memory) and its
health (``status`` in run.json: ``localize.tracking.status``)."""
from __future__ import annotations

import math
import resource
import time
from typing import Any

import pytorch_lightning as pl
import torch

from localize.tracking.status import TrainingFailed


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
    """Times training epochs and counts non-pad training tokens (``attention_mask`` sum).

    The counts travel in checkpoints (``state_dict``), so a resumed run's stats cover the whole
    run: the epochs, tokens and wall time of its earlier parts up to their last checkpoint
    (``prior_wall_s``; the work after it is redone and counted once).
    """

    def __init__(self) -> None:
        self.stats: dict[str, float] = {}
        self._tokens = 0
        self._train_time = 0.0
        self._epoch_times: list[float] = []
        self._created = time.perf_counter()  # ~ the job's start: built with the other callbacks
        self._prior_wall = 0.0
        self._epoch_start: float | None = None

    def state_dict(self) -> dict[str, float | list[float]]:
        # Saved at the end of an epoch's validation, before on_train_epoch_end closes the epoch:
        # the checkpoint's epoch is counted as done (a resume starts with the next one).
        open_epoch = [time.perf_counter() - self._epoch_start] if self._epoch_start is not None else []
        return {"tokens": self._tokens, "train_time": self._train_time, "epoch_times": self._epoch_times + open_epoch,
                "wall_s": self._prior_wall + time.perf_counter() - self._created}

    def load_state_dict(self, state_dict: dict) -> None:
        if self.stats:  # trainer.test(ckpt_path=best) restores callbacks too: the fit's stats stay
            return
        self._tokens, self._train_time = int(state_dict["tokens"]), float(state_dict["train_time"])
        self._epoch_times, self._prior_wall = list(state_dict["epoch_times"]), float(state_dict["wall_s"])

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.ckpt_path:  # resumed (loops restored by now): drop the metrics.csv rows redone from here
            from localize.tracking.csv_log import ResumableCSVLogger

            for logger in trainer.loggers:
                if isinstance(logger, ResumableCSVLogger):
                    logger.resumed_at(trainer.global_step, trainer.current_epoch)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._tokens += int(batch["attention_mask"].sum())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # Includes the validation pass that Lightning runs inside the epoch; the train-only time
        # is epoch time minus validation, tracked below.
        self._epoch_times.append(time.perf_counter() - self._epoch_start)
        self._epoch_start = None

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._val_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.training or trainer.state.fn == "fit":
            self._train_time -= time.perf_counter() - self._val_start

    def on_fit_end(self, trainer, pl_module) -> None:
        train_time = sum(self._epoch_times) + self._train_time
        self.stats = {
            "epochs": len(self._epoch_times),
            "optimizer_steps": trainer.global_step,  # the budget that step-budget comparisons hold equal
            "s_per_epoch": train_time / max(len(self._epoch_times), 1),
            # Each epoch's wall time with its dev pass: a compiled model's first epoch carries its compilation.
            "epoch_s": [round(t, 3) for t in self._epoch_times],
            "train_tokens": self._tokens,
            "train_tokens_per_s": self._tokens / max(train_time, 1e-9),
            "prior_wall_s": self._prior_wall,  # resumed: wall time of the earlier parts (in perf.wall_s)
            **peak_memory_mb(),
        }
        for logger in trainer.loggers:
            logger.log_metrics({f"perf/{k}": v for k, v in self.stats.items() if not isinstance(v, list)},
                               step=trainer.global_step)


class RunHealthCallback(pl.Callback):
    """Refuses a fit that would train nothing, stops one whose loss is not finite, and counts the
    dev set's predicted and gold labels per validation epoch (modules that classify report them in
    ``pl_module.dev_label_counts``: ``{"pred": tensor, "gold": tensor}``, one count per label id).

    One check for every method and task: the loss checked is the one ``training_step`` returns.
    """

    def __init__(self) -> None:
        self._epochs: list[tuple[float | None, dict[str, list[int]]]] = []
        self.dev_counts: dict[str, list[int]] | None = None  # the best epoch's, after fit

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(pl_module, "param_counts", {}).get("trainable") == 0:
            return  # a method that trains no parameter (adapter=icl: prompting) is scored as it is
        if trainer.max_epochs == 0 or trainer.max_steps == 0:
            key, value = ("trainer.max_epochs", trainer.max_epochs) if trainer.max_epochs == 0 else (
                "trainer.max_steps", trainer.max_steps)
            raise ValueError(f"{key}={value} trains nothing (the run would record an untrained model as finished): "
                             f"set {key}=1 or more; to score a model without training use python -m "
                             f"localize.evaluate model=<name> ...")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all()):
            lr = getattr(pl_module, "hparams", {}).get("lr")
            raise TrainingFailed(
                f"train/loss is {float(loss.detach().float().mean())} at epoch {trainer.current_epoch}, step "
                f"{trainer.global_step}: training stopped (run.json status: failed). Lower the learning rate "
                f"(adapter.lr={lr}) or check the data (data.max_length, the labels), then retrain")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        counts = getattr(pl_module, "dev_label_counts", None)
        ckpt = trainer.checkpoint_callback
        monitor = getattr(ckpt, "monitor", None)
        score = trainer.callback_metrics.get(monitor) if monitor else None
        plain = {k: [int(x) for x in v] for k, v in counts.items()} if counts else {}
        self._epochs.append((float(score) if score is not None else None, plain))
        if trainer.state.fn == "validate":  # a dev pass after fit (nothing trained): its counts are the run's
            self.dev_counts = plain or None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.dev_counts = _best_epoch(self._epochs, trainer.checkpoint_callback) if self._epochs else None

    # Kept in checkpoints: a resumed run still knows the dev predictions of its earlier epochs.
    def state_dict(self) -> dict[str, Any]:
        return {"epochs": [[s, c] for s, c in self._epochs]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._epochs = [(s, c) for s, c in state_dict.get("epochs", [])]


def _best_epoch(epochs: list[tuple[float | None, dict[str, list[int]]]], ckpt: Any) -> dict[str, list[int]]:
    """The counts of the epoch whose weights the best checkpoint holds (ModelCheckpoint keeps the
    first of equal scores), else of the last epoch."""
    best = getattr(ckpt, "best_model_score", None)
    if best is not None and math.isfinite(float(best)):
        for score, counts in epochs:
            if score is not None and math.isclose(score, float(best), rel_tol=1e-6, abs_tol=1e-9):
                return counts
    return epochs[-1][1]
