"""Method-specific training hooks, attached by the adapter config (``adapter.callbacks``)."""
from __future__ import annotations

import logging

import pytorch_lightning as pl

log = logging.getLogger(__name__)


class AdaLoraCallback(pl.Callback):
    """Drives AdaLoRA's rank allocation.

    AdaLoRA needs the real number of optimizer steps (``total_step``) for its budget schedule, and
    ``update_and_allocate`` after every optimizer step while the gradients are still there
    (Lightning zeroes them at the start of the next step, so ``on_train_batch_end`` sees them).

    Args:
        tinit_frac: share of steps before rank pruning starts (warm-up at full rank).
        tfinal_frac: share of final steps trained at the final budget.
    """

    def __init__(self, tinit_frac: float = 0.1, tfinal_frac: float = 0.2) -> None:
        self.tinit_frac, self.tfinal_frac = tinit_frac, tfinal_frac
        self._last_step = -1

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        config = pl_module.model.peft_config["default"]
        total = int(trainer.estimated_stepping_batches)
        tinit, tfinal = int(self.tinit_frac * total), int(self.tfinal_frac * total)
        if total < 3 or tinit >= total - tfinal:
            raise ValueError(
                f"AdaLoRA needs more optimizer steps than {total} for its schedule "
                f"(tinit={tinit}, tfinal={tfinal}): raise trainer.max_epochs or lower data.batch_size"
            )
        # The rank allocator holds this same config object, so the schedule follows the change.
        config.total_step, config.tinit, config.tfinal = total, tinit, tfinal
        log.info("AdaLoRA schedule: total_step=%d tinit=%d tfinal=%d", total, tinit, tfinal)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step != self._last_step:  # only after a real optimizer step (gradient accumulation)
            pl_module.model.base_model.update_and_allocate(step)
            self._last_step = step
