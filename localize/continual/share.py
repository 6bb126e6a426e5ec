"""Reuse what two sequences of one plan have in common (``share_from=<sequence dir>``).

Strategies differ only from the second stage on (replay, L2-SP and EWC add nothing to the first stage;
one adapter per stage trains the sequence's adapter there too), and the base model's zero-shot scores do
not depend on the strategy at all. On a CPU where one stage of a causal LM with its generation-based
scoring takes many minutes, a sequence can therefore copy from another finished sequence of the same plan
and seed: the zero-shot evaluations, the first stage's run dir when its training overrides are the same,
and the evaluations that stage itself answered. Only the first stage is shared: a later stage starts from
its own sequence's earlier stage (``init_from`` names a path of that sequence). What was copied is listed
in the record (``shared``), so a table that pairs strategies says they share it.
"""
from __future__ import annotations

import os
import shutil
from typing import Any

from localize.report.records import CONTINUAL_RECORD
from localize.tracking.record import read_record, redact_overrides
from localize.tracking.status import FINISHED

# Overrides that name the sequence or how a stage was resumed, not what it trains.
_PER_SEQUENCE = ("tags=", "++logger.wandb.group=", "ckpt_path=")


def _plan(overrides: list[str] | None) -> list[str]:
    """The training a stage's overrides ask for: each key once (``merged``), so their order does not matter."""
    return sorted(o for o in (overrides or []) if not o.startswith(_PER_SEQUENCE))


def share(seq: Any, source: str) -> dict[str, str]:
    """Copy into ``seq.out`` what ``source`` (a sequence dir) holds that ``seq`` would compute the same way.

    Returns {what: where it came from}. Raises ValueError (one line, with the fix) when ``source`` is not a
    sequence of the same plan and seed.
    """
    source = os.path.abspath(os.path.expanduser(str(source)))
    other = read_record(source, CONTINUAL_RECORD)
    fix = "point it at a finished sequence dir of the same sequence= and seed=, or share_from=null"
    if other is None:
        raise ValueError(f"share_from={source} holds no {CONTINUAL_RECORD}: {fix}")
    mine = seq.state
    if (other.get("sequence"), other.get("seed"), other.get("stage_names")) != (
            mine["sequence"], mine["seed"], mine["stage_names"]):
        raise ValueError(f"share_from={source} is sequence {other.get('sequence')} seed {other.get('seed')}, "
                         f"this is {mine['sequence']} seed {mine['seed']}: {fix}")
    plan = {k: v for k, v in (other.get("config") or {}).items() if k != "strategy"}
    if plan != {k: v for k, v in mine["config"].items() if k != "strategy"}:
        raise ValueError(f"share_from={source} ran another version of sequence {mine['sequence']} "
                         f"(its stages, common or train overrides differ): {fix}")
    copied: dict[str, str] = {}

    def take(rel: str) -> bool:
        src, dst = os.path.join(source, rel), os.path.join(seq.out, rel)
        if os.path.exists(dst) or read_record(src) is None:  # ours already, or nothing finished to take
            return os.path.exists(dst)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copytree(src, dst, symlinks=True)
        copied[rel] = src
        return True

    for j in range(len(seq.names)):
        take(os.path.join("evals", f"zero-shot-on-{j}"))
    stage = (other.get("stages") or [None])[0] or {}
    if stage.get("status") == FINISHED and _plan(stage.get("overrides")) == _plan(
            redact_overrides(seq.train_overrides(0))):
        if take(os.path.relpath(seq.stage_dir(0), seq.out)):
            theirs_last = (other.get("config") or {}).get("strategy", {}).get("serve") == "last"
            for j in range(len(seq.names)):
                # After stage 0, stage j's test was answered by stage 0 itself in both sequences: when j is 0,
                # or when both serve every test with their last model.
                if j == 0 or (theirs_last and seq.strategy.serve == "last"):
                    take(os.path.join("evals", f"after-0-on-{j}"))
    return copied
