"""Adversarial training on the input embeddings: ``python -m localize.train ... +adversarial=fgm``.

FGM (Miyato et al. 2017): after the normal backward pass, the embedding output ``e`` of the batch is
moved by ``epsilon * g / ||g||`` (``g``: the loss gradient at ``e``, one norm per example), the loss is
computed again on the moved embeddings and its gradient is added — the model learns to keep its
prediction in a small neighbourhood of each input, which is meant to make it less sensitive to typos
and other small input noise (measure it with ``localize.evaluate run=<dir> +perturb=noise``). It works
with frozen word embeddings too: the gradient is taken at the embedding *output*, not the table.
A training step costs about two forward and two backward passes.
"""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch


class FGMCallback(pl.Callback):
    """FGM on the backbone's input embeddings.

    Args:
        epsilon: the L2 size of the perturbation per example (in embedding units); 0 turns it off.
    """

    def __init__(self, epsilon: float = 1.0) -> None:
        if epsilon < 0:
            raise ValueError(f"callbacks.fgm.epsilon must be >= 0, got {epsilon}: set callbacks.fgm.epsilon=1.0")
        self.epsilon = float(epsilon)
        self._batch: Any = None
        self._seen: torch.Tensor | None = None
        self._delta: torch.Tensor | None = None

    def _hook(self, module: torch.nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        if self._delta is not None:  # the adversarial pass: the moved embeddings
            return output + self._delta.to(output.dtype)
        if torch.is_grad_enabled():  # the normal pass: keep the output and its gradient
            if not output.requires_grad:  # frozen embedding table: the output is a leaf of its own
                output = output.detach().requires_grad_(True)
            output.retain_grad()
            self._seen = output
        return output

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._handle = pl_module.model.get_input_embeddings().register_forward_hook(self._hook)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._handle.remove()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._batch, self._seen, self._delta = batch, None, None

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seen = self._seen
        if not self.epsilon or seen is None or seen.grad is None or self._delta is not None:
            return
        g = seen.grad.detach().float()
        norm = g.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *([1] * (g.dim() - 1)))
        self._delta = self.epsilon * g / norm
        try:
            with trainer.precision_plugin.forward_context():
                loss = pl_module.training_loss(self._batch)
            (loss / max(1, trainer.accumulate_grad_batches)).backward()
            pl_module.log("train/adv_loss", loss.detach(), on_step=True, on_epoch=False)
        finally:
            self._delta, self._seen = None, None
