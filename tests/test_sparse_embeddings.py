"""module.sparse_embeddings (localize.models.optim): full FT's embedding rows are updated only where a batch used
them (SparseAdam), the rest of the model as before (AdamW), with clipping over both kinds of gradient."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from conftest import FAST, NER, compose_cfg
from localize.models.optim import clip_grad_norm_with_sparse
from localize.utils import build


def _fit(tmp_path, sparse: bool):
    cfg = compose_cfg(FAST + NER + ["adapter=full", f"module.sparse_embeddings={str(sparse).lower()}", "seed=5"],
                      tmp_path / str(sparse))
    dm = build(cfg.data)
    dm.setup("fit")
    pl.seed_everything(5)
    module = build(cfg.module, label_names=dm.label_names)
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    used = torch.unique(torch.cat([b["input_ids"].flatten() for b in dm.train_dataloader()]))
    pl.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False, gradient_clip_val=0.5,
               limit_val_batches=0, enable_progress_bar=False, enable_model_summary=False).fit(module, datamodule=dm)
    return module, before, used


def test_only_the_rows_a_batch_used_move_and_dense_adamw_moves_them_all(tmp_path):
    module, before, used = _fit(tmp_path, sparse=True)
    emb = module.model.get_input_embeddings()
    name = next(n for n, p in module.model.named_parameters() if p is emb.weight)
    unused = torch.ones(emb.weight.shape[0], dtype=torch.bool)
    unused[used] = False
    assert emb.sparse and unused.any()
    assert torch.equal(emb.weight[unused], before[name][unused])  # no gradient, no decay: bit-identical
    assert not torch.equal(emb.weight[used], before[name][used])
    body = next(n for n, p in module.model.named_parameters() if "encoder" in n and p.ndim > 1)
    assert not torch.equal(dict(module.model.named_parameters())[body], before[body])  # AdamW trains the rest
    dense, before_d, _ = _fit(tmp_path, sparse=False)
    w = dense.model.get_input_embeddings().weight
    assert not torch.equal(w[unused], before_d[name][unused])  # dense AdamW's weight decay reaches every row


def test_the_optimizer_state_round_trips_through_a_checkpoint(tmp_path):
    module, _, _ = _fit(tmp_path, sparse=True)
    opt = module.trainer.optimizers[0]
    state = opt.state_dict()
    assert state["sparse"]["state"] and state["dense"]["state"]
    fresh = module.configure_optimizers()["optimizer"]
    fresh.load_state_dict(state)
    assert torch.equal(fresh.sparse.state_dict()["state"][0]["exp_avg"], state["sparse"]["state"][0]["exp_avg"])
    assert [g["lr"] for g in fresh.param_groups] == [g["lr"] for g in opt.param_groups]


def test_clipping_with_a_sparse_gradient_is_torchs_clipping_of_the_dense_one():
    torch.manual_seed(0)
    ids = torch.tensor([1, 2, 2, 7])
    sparse, dense = torch.nn.Embedding(10, 4, sparse=True), torch.nn.Embedding(10, 4)
    dense.weight.data.copy_(sparse.weight.data)
    head = torch.nn.Linear(4, 1)
    head2 = torch.nn.Linear(4, 1)
    head2.load_state_dict(head.state_dict())
    head(sparse(ids)).pow(2).sum().backward()
    head2(dense(ids)).pow(2).sum().backward()
    got = clip_grad_norm_with_sparse([sparse.weight, *head.parameters()], 0.1)
    want = torch.nn.utils.clip_grad_norm_([dense.weight, *head2.parameters()], 0.1)
    assert got.item() == pytest.approx(want.item(), rel=1e-5) and want > 0.1  # it did clip
    assert torch.allclose(sparse.weight.grad.to_dense(), dense.weight.grad, atol=1e-7)
    assert torch.allclose(head.weight.grad, head2.weight.grad, atol=1e-7)


def test_frozen_embeddings_are_refused_with_the_fix_and_the_fix_builds(tmp_path):
    over = FAST + NER + ["adapter=full_frozen_emb"]
    with pytest.raises(ValueError, match=r"needs trainable word embeddings .* Fix: module.sparse_embeddings=false"):
        build(compose_cfg(over + ["module.sparse_embeddings=true"], tmp_path).module, label_names=["O", "B-X"])
    assert build(compose_cfg(over + ["module.sparse_embeddings=false"], tmp_path).module, label_names=["O", "B-X"])


def test_a_sparse_run_trains_checkpoints_and_reloads(tmp_path):
    from localize.runs import load_run
    from localize.train import train

    rec = train(compose_cfg(FAST + NER + ["adapter=full", "module.sparse_embeddings=true"], tmp_path / "run"))
    assert rec["status"] in ("finished", "degenerate") and rec["config"]["module"]["sparse_embeddings"] is True
    assert list((tmp_path / "run" / "checkpoints").glob("*.ckpt"))  # the two optimizers' state was saved
    assert load_run(str(tmp_path / "run")).model.get_input_embeddings().sparse
