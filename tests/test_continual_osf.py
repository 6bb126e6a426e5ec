"""The OSF strategy (conf/strategy/osf.yaml): a later stage stands on the previous stage's merged weights
(init_merged), and localize.runs.load_run rebuilds that chain."""
from __future__ import annotations

import shutil

import pytest
import torch

from localize.config import compose
from localize.models.weights import merge_adapter, rebase_on
from localize.continual.sequence import Sequence
from localize.runs import load_run
from localize.utils import build

from test_continual import _cfg

QUERY = "bert.encoder.layer.0.attention.self.query"


def _merged_weight(run_dir: str) -> torch.Tensor:
    return merge_adapter(load_run(run_dir)).get_submodule(QUERY).weight.detach().clone()


@pytest.fixture(scope="module")
def osf_sequence(tmp_path_factory):
    out = tmp_path_factory.mktemp("continual_osf") / "osf"
    return out, Sequence(_cfg(out, "osf", extra=["strategy.first_rank=0.5", "strategy.later_rank=0.75"])).run()


def test_a_later_osf_stage_stands_on_the_merged_previous_stage(osf_sequence):
    out, state = osf_sequence
    assert state["status"] == "finished"
    first, second = (str(out / "stages" / d) for d in ("0-names", "1-numbers"))
    later = state["stages"][1]["overrides"]
    assert "init_merged=true" in later and "adapter.peft.effective_rank=0.75" in later
    assert "adapter.peft.effective_rank=0.5" in state["stages"][0]["overrides"]
    # Reloaded, stage 1's OSF layer wraps stage 0's merged weight, not the pretrained one stage 0 started from.
    stage0 = _merged_weight(first)
    pretrained = load_run(first).model.get_base_model().get_submodule(QUERY).base_layer.weight
    assert not torch.equal(stage0, pretrained)  # stage 0 trained this weight
    reloaded = load_run(second).model.get_base_model().get_submodule(QUERY)
    assert torch.equal(reloaded.base_layer.weight, stage0)
    assert reloaded.effective_rank["default"] == int(0.75 * min(stage0.shape))
    assert state["cost"]["models_kept"] == 2  # the chain is what rebuilds stage 1


def test_rebasing_keeps_the_previous_stage_function(osf_sequence, tmp_path):
    """Before a later stage trains, its model computes what the previous stage's did (OSF starts at the
    identity over the merged weights), on the old labels' rows of the grown head."""
    out, state = osf_sequence
    old = load_run(str(out / "stages" / "0-names"))
    new = build(compose(state["stages"][1]["overrides"], out_dir=tmp_path).module,
                label_names=state["stages"][1]["labels"])
    ids = torch.randint(5, 100, (2, 12))
    with torch.no_grad():
        want = old.eval().model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        rebase_on(new, load_run(str(out / "stages" / "0-names")))
        got = new.eval().model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    rows = [new.label_names.index(x) for x in old.label_names]
    assert torch.allclose(got[..., rows], want, atol=1e-5)
    assert sum(p.requires_grad for n, p in new.model.named_parameters() if "osf_svd_params" in n) > 0


def test_a_missing_base_run_names_the_fix_and_the_fix_works(osf_sequence, tmp_path):
    out, _ = osf_sequence
    first, second = out / "stages" / "0-names", out / "stages" / "1-numbers"
    away = tmp_path / "away"
    shutil.move(str(first), str(away))
    try:
        with pytest.raises(FileNotFoundError, match=r"init_merged=true.*Fix: restore that run dir"):
            load_run(str(second))
    finally:
        shutil.move(str(away), str(first))
    assert load_run(str(second)).label_names[:7] == load_run(str(first)).label_names


def test_another_adapter_on_a_run_is_refused_and_init_merged_fixes_it(osf_sequence, tmp_path):
    """init_from a run of another adapter names init_merged=true as a fix; with it the new LoRA run trains
    on the run's merged weights and reloads on them."""
    from localize.train import train

    out, state = osf_sequence
    first = str(out / "stages" / "0-names")
    keep = [o for o in state["stages"][1]["overrides"]
            if not o.startswith(("adapter", "init_merged", "++logger", "tags", "ckpt_path"))]
    lora = [*keep, "adapter=lora", "logger=none"]
    with pytest.raises(ValueError, match=r"was trained with adapter=osf, this run uses adapter=lora.*"
                                         r"Fix: adapter=osf, init_merged=true"):
        train(compose(lora, "train", out_dir=str(tmp_path / "refused")))
    train(compose([*lora, "init_merged=true"], "train", out_dir=str(tmp_path / "fixed")))
    # A tiny model after 2 batches may predict one label (degenerate): the weights are what is checked here.
    reloaded = load_run(str(tmp_path / "fixed"), allow_degenerate=True).model.get_base_model().get_submodule(QUERY)
    assert torch.equal(reloaded.base_layer.weight, _merged_weight(first))
