"""Training hooks of continual stages: start from a finished run's weights (growing the head), and
pull the weights toward where the stage started (L2-SP)."""
from __future__ import annotations

import logging
import os
from typing import Any

import pytorch_lightning as pl
import torch

from localize.models.weights import copy_weights, rebase_on

log = logging.getLogger(__name__)


def init_from_run(run_dir: str | None, adapter: str | None = None, merged: bool = False) -> "InitFromRun | None":
    """The ``init_from`` callback of ``conf/callbacks/default.yaml``: None (no callback) without a run."""
    return InitFromRun(run_dir, adapter, merged) if run_dir else None


class InitFromRun(pl.Callback):
    """Before fit, copy a finished run's trained weights into this run's model (``init_from=<run dir>``).

    Parameters are matched by name. A task head whose label set grew (class-incremental NER: the run
    keeps the old labels first, ``data.prior_labels``) gets the old rows copied by label name, bit for
    bit; the new rows keep their fresh initialisation. A resumed run's checkpoint is restored after this.

    Args:
        run_dir: the run to start from (``localize.runs.load_run`` reads it: status, overrides, weights).
        adapter: this run's ``adapter.name``; without ``merged`` it must be the run's, because a stored run
            keeps only what it trained over its base (a LoRA run on top of a fully fine-tuned one would not
            rebuild).
        merged: ``init_merged=true``: the run's adapter is merged into its base and that model becomes this
            run's base, under a fresh adapter of any kind (OSF's next stage splits the merged weights by
            their SVD). ``load_run`` rebuilds such a run from the same chain.
    """

    def __init__(self, run_dir: str, adapter: str | None = None, merged: bool = False) -> None:
        self.run_dir, self.adapter, self.merged = str(run_dir), adapter, bool(merged)
        self.copied: dict[str, Any] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or self.copied:
            return
        from localize.runs import load_run

        source = load_run(self.run_dir)
        if self.merged:
            self.copied = rebase_on(pl_module, source)
        else:
            trained_with = source.run_info.record.get("adapter")
            if self.adapter is not None and trained_with is not None and trained_with != self.adapter:
                raise ValueError(f"init_from={self.run_dir} was trained with adapter={trained_with}, this run "
                                 f"uses adapter={self.adapter}: a run that starts from it must use the same. "
                                 f"Fix: adapter={trained_with}, init_merged=true (a new adapter on its merged "
                                 f"weights), or init_from=null")
            self.copied = copy_weights(source, pl_module)
        log.info("init_from %s%s: %d tensors copied, %d head(s) grown", self.run_dir, " (merged)" * self.merged,
                 self.copied["tensors"], len(self.copied["grown"]))


class L2SPCallback(pl.Callback):
    """L2-SP (Li et al. 2018): adds ``alpha * (w - w_start)`` to each trainable weight's gradient, the
    gradient of ``alpha/2 * ||w - w_start||^2``, where ``w_start`` is the weight when fit starts (after
    ``init_from``: the previous stage's). The pull keeps a later stage near what earlier ones learned.
    Every trainable tensor is pulled, a grown head's new rows toward their initialisation included.

    Args:
        alpha: strength; 0 turns it off. Logged: ``train/l2sp_sq_dist`` (``||w - w_start||^2``).
    """

    def __init__(self, alpha: float = 1.0) -> None:
        if alpha < 0:
            raise ValueError(f"callbacks.l2sp.alpha must be >= 0, got {alpha}: set callbacks.l2sp.alpha=1.0")
        self.alpha = float(alpha)
        self.start: dict[str, torch.Tensor] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # In setup, after InitFromRun's (callbacks run in config order) and before a resumed stage's
        # checkpoint is restored: the reference is the stage's start, also when it resumes.
        if stage == "fit" and not self.start:
            self.start = {n: p.detach().clone() for n, p in pl_module.model.named_parameters() if p.requires_grad}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = {n: t.to(pl_module.device) for n, t in self.start.items()}

    def weight(self, name: str) -> torch.Tensor | float:
        """Per-weight strength of the pull (L2-SP: 1 everywhere; EWC: the Fisher diagonal)."""
        return 1.0

    @torch.no_grad()
    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        scale = self.alpha / max(1, trainer.accumulate_grad_batches)
        dist = 0.0
        for n, p in pl_module.model.named_parameters():
            if n in self.start and p.grad is not None:
                d = p.detach() - self.start[n]
                p.grad.add_((self.weight(n) * d).to(p.grad.dtype), alpha=scale)
                dist += float(d.float().pow(2).sum())
        pl_module.log(f"train/{self.log_name}_sq_dist", dist, on_step=True, on_epoch=False)

    log_name = "l2sp"


FISHER = "fisher.safetensors"


class EWCCallback(L2SPCallback):
    """EWC (Kirkpatrick et al. 2017) with a diagonal Fisher: the L2-SP pull weighted per weight by how much
    the earlier stages' loss depends on it, ``alpha * F * (w - w_start)``.

    ``F`` is estimated when fit starts, at the weights the stage starts from, as the mean squared gradient
    of the loss over up to ``batches`` training batches of the ``init_from`` run's own data (rebuilt from its
    record: its datamodule, its label ids), plus that run's own ``fisher.safetensors`` (online EWC: the
    stages before it). It is normalised to mean 1 over the pulled weights, so ``alpha`` means what it
    means for L2-SP. This stage's ``F`` is saved as ``<run dir>/fisher.safetensors`` for the next stage.
    Without ``init_from`` (a first stage) nothing is pulled.

    Args:
        alpha: strength (as for L2-SP).
        init_from: the run the stage starts from (``${init_from}``).
        out_dir: this run's dir (``${paths.output_dir}``).
        batches: training batches of the earlier data used for ``F``.
    """

    log_name = "ewc"

    def __init__(self, alpha: float = 1.0, init_from: str | None = None, out_dir: str | None = None,
                 batches: int = 32) -> None:
        super().__init__(alpha)
        self.init_from, self.out_dir, self.batches = init_from, out_dir, int(batches)
        self.fisher: dict[str, torch.Tensor] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or self.start or not self.init_from:
            return
        super().setup(trainer, pl_module, stage)
        self.fisher = fisher_diagonal(pl_module, self.init_from, self.batches)
        if self.out_dir:
            from safetensors.torch import save_file

            os.makedirs(self.out_dir, exist_ok=True)
            save_file({n: f.contiguous() for n, f in self.fisher.items()}, os.path.join(self.out_dir, FISHER))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)
        self.fisher = {n: f.to(pl_module.device) for n, f in self.fisher.items()}

    def weight(self, name: str) -> torch.Tensor | float:
        return self.fisher.get(name, 0.0)


def fisher_diagonal(pl_module: pl.LightningModule, run_dir: str, batches: int) -> dict[str, torch.Tensor]:
    """Mean squared loss gradient per trainable weight over ``run_dir``'s training data (+ its stored
    Fisher), normalised to mean 1; rows of a grown head beyond the run's labels get 0."""
    from safetensors.torch import load_file

    from localize.runs import build_datamodule, read_run

    info = read_run(run_dir)
    dm = build_datamodule(info)  # the run's own data and label ids (old labels keep their ids when grown)
    dm.setup("fit")
    params = {n: p for n, p in pl_module.model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    was_training = pl_module.model.training
    pl_module.model.eval()  # no dropout: the gradient of the model the stage starts from
    seen = 0
    for batch in dm.train_dataloader():
        if seen >= batches:
            break
        pl_module.model.zero_grad(set_to_none=True)
        pl_module.training_loss({k: v.to(pl_module.device) if isinstance(v, torch.Tensor) else v
                                 for k, v in batch.items()}).backward()
        for n, p in params.items():
            if p.grad is not None:
                fisher[n] += p.grad.detach().float().pow(2)
        seen += 1
    pl_module.model.zero_grad(set_to_none=True)
    pl_module.model.train(was_training)
    old, new = len(info.labels or []), len(pl_module.label_names or [])
    if old and new > old:  # a grown head's new rows: nothing earlier depends on them
        for f in fisher.values():
            if f.shape[0] == new:
                f[old:] = 0.0
    fisher = _normalised(fisher)
    stored = os.path.join(run_dir, FISHER)
    if os.path.isfile(stored):  # online EWC: the stages before that run, already normalised
        for n, f in load_file(stored).items():
            if n in fisher and f.shape[1:] == fisher[n].shape[1:]:
                rows = min(f.shape[0], fisher[n].shape[0])
                fisher[n][:rows] += f[:rows].float()
        fisher = _normalised(fisher)
    return fisher


def _normalised(fisher: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    mean = torch.cat([f.flatten() for f in fisher.values()]).mean().clamp(min=1e-20)
    return {n: f / mean for n, f in fisher.items()}
