"""A step budget (``trainer.max_steps=N``) replaces the task's epochs and reaches the schedules: the
warm-up/decay and AdaLoRA's rank budget are laid out over exactly N optimizer steps."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl

from conftest import FAST, NER, compose_cfg

# FAST pins max_epochs=1; a step budget runs as many epochs as its steps need (3 batches per epoch here).
STEPS_FAST = [o for o in FAST if not o.startswith("trainer.max_epochs")]


class Probe(pl.Callback):
    """Records what the schedules were told and where they ended."""
    seen: dict = {}

    def on_fit_start(self, trainer, pl_module):
        Probe.seen = {"estimated": int(trainer.estimated_stepping_batches)}

    def on_fit_end(self, trainer, pl_module):
        sched = trainer.lr_scheduler_configs[0].scheduler
        Probe.seen.update(steps=trainer.global_step, last_lr=sched.get_last_lr()[0], epochs=trainer.current_epoch)
        config = getattr(pl_module.model, "peft_config", {}).get("default")
        Probe.seen["adalora_total"] = getattr(config, "total_step", None)


def test_max_steps_replaces_the_epoch_budget():
    assert compose_cfg(NER).trainer.max_epochs == 10  # the task's budget
    cfg = compose_cfg(NER + ["trainer.max_steps=40"])
    assert (cfg.trainer.max_steps, cfg.trainer.max_epochs) == (40, -1)
    pinned = compose_cfg(NER + ["trainer.max_steps=40", "trainer.max_epochs=2"])
    assert pinned.trainer.max_epochs == 2  # both given: Lightning stops at whichever comes first


@pytest.mark.parametrize("adapter", ["lora", "adalora"])
def test_a_step_budget_flows_through_the_schedule_and_adalora(tmp_path, adapter):
    from localize.train import train

    probe = ["+callbacks.probe._target_=test_step_budget.Probe"]
    record = train(compose_cfg(STEPS_FAST + NER + [f"adapter={adapter}", "trainer.max_steps=7", *probe],
                               tmp_path / "run"))
    assert record["perf"]["optimizer_steps"] == 7 and record["perf"]["epochs"] == 3  # 3 + 3 + 1 batches
    assert Probe.seen["estimated"] == 7 and Probe.seen["steps"] == 7
    assert Probe.seen["last_lr"] == pytest.approx(0.0, abs=1e-12)  # linear decay ends at step 7, not 3 or 10
    assert Probe.seen["adalora_total"] == (7 if adapter == "adalora" else None)


def test_a_budget_that_ends_inside_the_first_epoch_finishes(tmp_path):
    """Early stopping is checked when a dev pass ends: a budget of 2 steps in a 3-batch epoch ends before
    any dev pass, which an end-of-epoch check turned into Lightning's RuntimeError (missing val/f1)."""
    from localize.train import train

    rec = train(compose_cfg(STEPS_FAST + NER + ["trainer.max_steps=2"], tmp_path / "run"))
    assert rec["status"] == "finished" and rec["perf"]["epochs"] == 1
