"""Run a stage sequence: each stage a normal training run (starting from the previous one unless the
strategy keeps one adapter per stage), then every stage's test set scored after every stage.

Layout of a sequence dir (``logs/continual/<name>/<time>``)::

    continual.json               the sequence record (matrix, transfer, costs), rewritten after each stage
    continual.png                the matrix as a heatmap
    stages/<i>-<name>/           stage i's run dir (run.json, model/, checkpoints/, W&B run in one group)
    evals/after-<i>-on-<j>/      stage j's test after stage i (a localize.evaluate record with its CI)
    evals/zero-shot-on-<j>/      stage j's test with the base model (forward transfer's reference)
    replay/<i>-<name>.jsonl      stage i's own training examples (strategies that replay them)

Resume (``resume=<sequence dir>``) skips what has a record and continues an interrupted stage from its
``checkpoints/last.ckpt``. ``share_from=<sequence dir>`` copies what another strategy's sequence of the same
plan and seed computed the same way (the zero-shot scores, the first stage: ``localize.continual.share``).
"""
from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any

from omegaconf import DictConfig, OmegaConf

from localize.config import compose
from localize.continual.matrix import cell, heatmap, transfer
from localize.data.errors import LabelsUnknownToModel
from localize.report.records import CONTINUAL_RECORD as SEQUENCE_RECORD  # the report finds sequences by it
from localize.tracking.record import RECORD, atomic_write_json, git_state, read_record, redact, redact_overrides
from localize.tracking.status import FAILED, FINISHED

log = logging.getLogger(__name__)

RUNNING = "running"
SERVES = ("last", "own")


def _stages(cfg: DictConfig) -> list[dict[str, Any]]:
    stages = OmegaConf.to_container(cfg.sequence.stages, resolve=True) if cfg.sequence.get("stages") else []
    if not isinstance(stages, list) or len(stages) < 2:
        raise ValueError("sequence.stages needs at least 2 stages, each {name: ..., overrides: [...]}: "
                         "see conf/sequence/ner_types.yaml")
    names = []
    for k, st in enumerate(stages):
        if not isinstance(st, dict) or not st.get("name") or not isinstance(st.get("overrides", []), list):
            raise ValueError(f"sequence.stages[{k}] must be {{name: <name>, overrides: [<override>, ...]}}, got {st!r}")
        names.append(str(st["name"]))
    if len(set(names)) != len(names):
        raise ValueError(f"sequence.stages names repeat ({names}): give each stage its own name")
    return stages


def _list(node: Any) -> list[str]:
    if node is None:
        return []
    return [str(x) for x in (OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node)]


def merged(overrides: list[str]) -> list[str]:
    """Later overrides of one key replace earlier ones (Hydra refuses a key given twice): a stage's
    settings win over the strategy's, which win over the sequence's."""
    last: dict[str, str] = {}
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        before = last.pop(key, None)
        if before is not None and before.startswith("+") and not o.startswith(("+", "~")):
            o = before[:len(before) - len(before.lstrip("+"))] + o  # +key added it: the new value adds it too
        last[key] = o
    return list(last.values())


class Sequence:
    """One sequence run: the plan from ``cfg`` and its state in ``<out>/continual.json``."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg, self.out = cfg, os.path.abspath(str(cfg.paths.output_dir))
        self.stages = _stages(cfg)
        self.names = [str(s["name"]) for s in self.stages]
        self.metric = str(cfg.sequence.metric)
        self.common, self.train_only = _list(cfg.sequence.get("common")), _list(cfg.sequence.get("train"))
        self.strategy = cfg.strategy
        if self.strategy.serve not in SERVES:
            raise ValueError(f"strategy.serve={self.strategy.serve!r} is not one of {SERVES}: strategy.serve=last")
        self.seed = int(cfg.seed)
        T = len(self.stages)
        self.state: dict[str, Any] = {
            "job_type": "continual", "run_name": str(cfg.run_name), "sequence": str(cfg.sequence.name),
            "strategy": str(self.strategy.name), "metric": f"test/{self.metric}", "seed": self.seed,
            "tags": _list(cfg.get("tags")), "status": RUNNING, "status_reason": None, "stage_names": self.names,
            "stages": [None] * T, "matrix": [[None] * T for _ in range(T)], "zero_shot": [None] * T,
            # The plan, redacted like run.json: a token passed as an override never reaches a file.
            "git": git_state(), "config": redact(OmegaConf.to_container(cfg.sequence, resolve=True)
                                                 | {"strategy": OmegaConf.to_container(cfg.strategy, resolve=True)}),
        }
        old = read_record_file(self.out)
        if old is not None:
            if (old.get("sequence"), old.get("strategy"), old.get("stage_names")) != (
                    self.state["sequence"], self.state["strategy"], self.names):
                raise ValueError(f"{self.out} holds sequence {old.get('sequence')} / strategy {old.get('strategy')}; "
                                 f"resume it with the same sequence= and strategy=, or start a new one (resume=null)")
            self.state.update({k: old[k] for k in ("stages", "matrix", "zero_shot", "shared") if k in old})

    # ---- paths and overrides --------------------------------------------------------------
    def stage_dir(self, i: int) -> str:
        return os.path.join(self.out, "stages", f"{i}-{self.names[i]}")

    def replay_file(self, i: int) -> str:
        return os.path.join(self.out, "replay", f"{i}-{self.names[i]}.jsonl")

    def _group(self) -> list[str]:
        return [f"++logger.wandb.group={self.state['run_name']}"]

    def train_overrides(self, i: int) -> list[str]:
        o = self.common + self.train_only + _list(self.strategy.get("train"))
        o += _list(self.strategy.get("later")) if i > 0 else []
        o += _list(self.stages[i].get("overrides"))
        o += [f"seed={self.seed}", f"tags=[continual,{self.state['sequence']},{self.state['strategy']},"
                                   f"stage-{i}-{self.names[i]}]"]
        if i > 0 and self.strategy.init_from_previous:
            o.append(f"init_from={self.stage_dir(i - 1)}")
        if i > 0 and self.strategy.get("replay_size") is not None:
            files = ",".join(self.replay_file(k) for k in range(i))
            o += [f"data.replay_from=[{files}]", f"data.replay_size={self.strategy.replay_size}"]
        last = os.path.join(self.stage_dir(i), "checkpoints", "last.ckpt")
        if os.path.isfile(last) and read_record(self.stage_dir(i)) is None:  # interrupted: go on where it stopped
            o.append(f"ckpt_path={last}")
        return merged(o + self._group())

    def eval_overrides(self, j: int, run: str | None) -> list[str]:
        o = self.common + _list(self.stages[j].get("overrides")) + [f"seed={self.seed}"]
        if run is None:
            o = [x for x in o if not x.lstrip("+~").startswith("model=")] + [f"model={self.model_choice}"]
        return merged(o + ([f"run={run}", "allow_degenerate=true"] if run else []) + self._group())

    @functools.cached_property
    def model_choice(self) -> str:
        """The stages' ``model=`` choice (the zero-shot evaluations' base model), composed once."""
        cfg = compose(self.common + self.train_only, "train", out_dir=self.out, return_hydra_config=True)
        return str(cfg.hydra.runtime.choices.model)

    def serving(self, i: int, j: int) -> str | None:
        """The run that answers stage j's test after stage i: the last model, or stage j's own adapter."""
        if self.strategy.serve == "last":
            return self.stage_dir(i)
        return self.stage_dir(j) if j <= i else None

    # ---- steps ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from localize.train import train

        os.makedirs(self.out, exist_ok=True)
        start = time.perf_counter()
        T = len(self.stages)
        if self.cfg.get("share_from"):
            from localize.continual.share import share

            self.state["shared"] = self.state.get("shared", {}) | share(self, str(self.cfg.share_from))
        for j in range(T):
            if self.state["zero_shot"][j] is None:
                rec = self._evaluate(os.path.join(self.out, "evals", f"zero-shot-on-{j}"), self.eval_overrides(j, None))
                self.state["zero_shot"][j] = cell(rec, self.metric)
        for i in range(T):
            rec, cfg_i = read_record(self.stage_dir(i)), None
            overrides = self.train_overrides(i)
            if rec is None:
                cfg_i = compose(overrides, "train", out_dir=self.stage_dir(i))
                try:
                    rec = train(cfg_i)
                except Exception as e:
                    self._stop(f"stage {i} ({self.names[i]}) did not finish: {type(e).__name__}: {e}")
                    raise
                finally:
                    _finish_wandb()
            self.state["stages"][i] = _stage_entry(self.stage_dir(i), rec, overrides)
            # A degenerate stage (one label for all of dev) is that strategy's outcome: it is scored like the
            # others; only a stage the next one must start from has to have finished.
            status = rec.get("status")
            if status == FAILED or (status != FINISHED and i < T - 1 and self.strategy.init_from_previous):
                self._stop(f"stage {i} ({self.names[i]}) is {status}: {rec.get('status_reason')}")
                return self.state
            if self.strategy.get("replay_size") is not None and i < T - 1 and not os.path.isfile(self.replay_file(i)):
                self._write_replay(i, cfg_i or compose(overrides, "train", out_dir=self.stage_dir(i)))
            for j in range(T):
                run = self.serving(i, j)
                if run is None or self.state["matrix"][i][j] is not None:
                    continue
                try:
                    rec_e = self._evaluate(os.path.join(self.out, "evals", f"after-{i}-on-{j}"),
                                           self.eval_overrides(j, run))
                except LabelsUnknownToModel as e:
                    if j <= i:
                        raise
                    # A later stage's new labels (class-incremental NER): this model has no output for them.
                    self.state.setdefault("not_measured", {})[f"{i},{j}"] = e.problem[:300]
                    continue
                self.state["matrix"][i][j] = cell(rec_e, self.metric)
            self._write()
        self._finish(time.perf_counter() - start)
        return self.state

    def _evaluate(self, out_dir: str, overrides: list[str]) -> dict[str, Any]:
        from localize.evaluate import evaluate

        rec = read_record(out_dir)
        if rec is None:
            try:
                rec = evaluate(compose(overrides, "evaluate", out_dir=out_dir))
            finally:
                _finish_wandb()
        return rec

    def _write_replay(self, i: int, cfg_i: DictConfig) -> None:
        """Stage i's own training examples (not what it replayed itself), for later stages to draw from."""
        from localize.data.stages import write_examples
        from localize.utils import build

        dm = build(cfg_i.data, replay_from=[])
        os.makedirs(os.path.dirname(self.replay_file(i)), exist_ok=True)
        write_examples(self.replay_file(i), dm.splits["train"])

    def values(self) -> list[list[float | None]]:
        return [[c["value"] if c else None for c in row] for row in self.state["matrix"]]

    def _write(self) -> None:
        R = self.values()
        Z = [c["value"] if c else None for c in self.state["zero_shot"]]
        self.state["metrics"] = transfer(R, Z)
        title = f"{self.state['sequence']} / {self.state['strategy']} (seed {self.seed})"
        self.state["heatmap"] = os.path.basename(heatmap(R, self.names, os.path.join(self.out, "continual.png"),
                                                         title, self.state["metric"]))
        atomic_write_json(os.path.join(self.out, SEQUENCE_RECORD), self.state)

    def _stop(self, reason: str) -> None:
        self.state.update(status=FAILED, status_reason=reason)
        log.error("sequence %s: %s", self.state["run_name"], reason)
        self._write()

    def _finish(self, wall_s: float) -> None:
        from localize.continual.forgetting import forgetting_tests

        stages = self.state["stages"]
        # A stage on a merged earlier one (init_merged, read from its resolved config, however it was spelled)
        # is rebuilt from the whole chain, so all of it is kept.
        chain = any(((read_record(s["run_dir"]) or {}).get("config") or {}).get("init_merged") for s in stages)
        kept = stages if self.strategy.serve == "own" or chain else stages[-1:]
        self.state["forgetting_tests"] = forgetting_tests(self) if self.strategy.serve == "last" else [
            {"stage": self.names[j], "note": "served by its own adapter: nothing it learned changes"}
            for j in range(len(stages) - 1)]
        self.state["cost"] = {
            "train_s": sum(s["train_s"] or 0.0 for s in stages), "wall_s": sum(s["wall_s"] or 0.0 for s in stages),
            "stored_mb": sum(s["stored_mb"] or 0.0 for s in kept), "models_kept": len(kept),
            "this_call_wall_s": wall_s}
        self.state.update(status=FINISHED, status_reason=None)
        self._write()
        m = self.state["metrics"]
        fmt = lambda v: "n/a" if v is None else f"{v:+.4f}"  # noqa: E731
        print(f"[localize] {self.state['run_name']}: final average {self.state['metric']}="
              f"{m['final_average']:.4f} | BWT {fmt(m['bwt'])} | FWT {fmt(m['fwt'])} | stored "
              f"{self.state['cost']['stored_mb']:.1f} MB\n[localize] sequence dir: {self.out}")


def _stage_entry(run_dir: str, rec: dict[str, Any] | None, overrides: list[str]) -> dict[str, Any]:
    rec = rec or {}
    perf, storage = rec.get("perf") or {}, rec.get("storage") or {}
    s_epoch, epochs = perf.get("s_per_epoch"), perf.get("epochs")
    return {"run_dir": run_dir, "run_name": rec.get("run_name"), "status": rec.get("status"),
            "status_reason": rec.get("status_reason"), "labels": rec.get("labels"),
            "train_n": ((rec.get("data") or {}).get("sizes") or {}).get("train"),
            "replayed": ((rec.get("data") or {}).get("replay") or {}).get("size", 0),
            "train_s": s_epoch * epochs if s_epoch is not None and epochs is not None else None,
            "wall_s": perf.get("wall_s"), "stored_mb": storage.get("stored_mb"),
            "test": (rec.get("metrics") or {}), "overrides": redact_overrides(overrides)}


def read_record_file(out: str) -> dict[str, Any] | None:
    """A sequence dir's ``continual.json`` (None if it has none)."""
    return read_record(out, SEQUENCE_RECORD)


def _finish_wandb() -> None:
    import wandb

    wandb.finish()


__all__ = ["Sequence", "SEQUENCE_RECORD", "read_record_file", "RECORD"]
