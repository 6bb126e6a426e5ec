"""Sparse word-embedding gradients (``module.sparse_embeddings=true``, full FT with trainable embeddings).

A dense AdamW step touches every row of e5-small's 96M-entry embedding matrix on every step, although a
batch uses a few hundred rows: the optimizer is most of a full-FT step on a CPU
(``benchmarks/profile_step.py``). With a sparse gradient, ``torch.optim.SparseAdam`` (lazy Adam) updates
only the rows the batch used. That changes the semantics, which is why it is an opt-in: an unused row's
moments do not decay and the row gets no weight decay (SparseAdam has none).
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import torch

log = logging.getLogger(__name__)


class DenseAndSparse(torch.optim.Optimizer):
    """One optimizer over two, so Lightning's automatic optimization, the lr schedule (it sets each group's
    ``lr``: the groups are the two optimizers' own dicts) and checkpoints see one.

    Args:
        dense: the optimizer of every parameter with a dense gradient (AdamW with its groups).
        sparse: ``torch.optim.SparseAdam`` over the parameters with sparse gradients.
    """

    def __init__(self, dense: torch.optim.Optimizer, sparse: torch.optim.Optimizer) -> None:
        self.dense, self.sparse = dense, sparse
        super().__init__([{"params": []}], {})

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        # The two optimizers' own group dicts, read each time: load_state_dict replaces them with new dicts, and
        # the lr schedule must set the ones that step.
        return self.dense.param_groups + self.sparse.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        """Optimizer.__init__ sets an empty list: the groups are the two optimizers'."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.dense.step()
        self.sparse.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.dense.zero_grad(set_to_none)
        self.sparse.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"dense": self.dense.state_dict(), "sparse": self.sparse.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.dense.load_state_dict(state_dict["dense"])
        self.sparse.load_state_dict(state_dict["sparse"])


def with_sparse_rows(dense_factory: Callable[..., torch.optim.Optimizer], groups: list[dict[str, Any]],
                     lr: float, sparse: torch.nn.Parameter) -> DenseAndSparse:
    """``sparse`` (the word embedding) taken out of ``groups`` to SparseAdam in its own group
    (``embeddings_sparse``); the rest of ``groups`` to ``dense_factory`` (the configured optimizer)."""
    dense = [g | {"params": ps} for g in groups if (ps := [p for p in g["params"] if p is not sparse])]
    return DenseAndSparse(dense_factory(params=dense, lr=lr),
                          torch.optim.SparseAdam([{"params": [sparse], "name": "embeddings_sparse", "lr": lr}], lr=lr))


@torch.no_grad()
def clip_grad_norm_with_sparse(parameters: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` (L2, over all gradients together) where some gradients are sparse,
    which it does not support: a sparse gradient is coalesced and its values count once per row."""
    grads = []
    for p in parameters:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            grads.append(p.grad._values())
        else:
            grads.append(p.grad)
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.to(g.dtype))
    return total


def lightning_kernel(factory: Callable[..., torch.optim.Optimizer], trainer: Any) -> Callable[..., torch.optim.Optimizer]:
    """``factory`` as configured, except a fused AdamW becomes the foreach kernel under a grad scaler with
    gradient clipping (16-mixed): the fused step unscales the gradients inside, so clipping before it would see
    scaled ones. Both kernels compute the same update. bf16-mixed has no scaler and keeps fused
    (:func:`clip_without_scaler`). ``trainer`` None (a module outside fit): as configured."""
    keywords = getattr(factory, "keywords", {})
    if (trainer is not None and keywords.get("fused") and trainer.gradient_clip_val
            and getattr(trainer.precision_plugin, "scaler", None) is not None):
        log.info("module.optimizer.fused=true with gradient clipping under %s's grad scaler: the foreach AdamW "
                 "kernel instead (the fused step unscales inside, after clipping would run)", trainer.precision)
        return functools.partial(factory, fused=False, foreach=True)
    return factory


def clip_without_scaler(plugin: Any, optimizer: torch.optim.Optimizer, clip_val: float, algorithm: str | None) -> bool:
    """Clip as fp32 does where a mixed-precision plugin has no grad scaler (bf16-mixed): Lightning's plugin refuses
    to clip a fused optimizer's gradients for fear they are still scaled, which without a scaler they never are.
    False where this does not apply (no such plugin, or a scaler): the caller clips as usual."""
    from pytorch_lightning.plugins.precision import MixedPrecision, Precision
    from pytorch_lightning.utilities import GradClipAlgorithmType

    if not (isinstance(plugin, MixedPrecision) and plugin.scaler is None):
        return False
    Precision.clip_gradients(plugin, optimizer, clip_val, GradClipAlgorithmType(algorithm or "norm"))
    return True
