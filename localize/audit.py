"""Label audit: ``python -m localize.audit +locale=ja task=ner [adapter=...] [data.path=...] [audit.folds=5]``.

Finds likely label errors in a labelled corpus. Each of ``audit.folds`` folds is a normal training run
(``data.cv_folds=K data.cv_fold=i``, the cross-validation split: every example is in exactly one
test fold), so every example gets an **out-of-fold** prediction from a model that never saw it.
cleanlab reads those probabilities against the given labels (its token-classification module for NER,
``find_label_issues`` for classification) and the examples are ranked, most suspicious first.

An audit dir (``logs/audits/<name>/<time>``) holds::

    label_issues.jsonl   every example, ranked: id, text, given vs suggested labels, score, flagged
    audit.json           the record: plan, folds, counts, the top of the ranking; with injected noise
                         (``data.label_noise=0.05``) precision@k and recall of the flips
    folds/<i>/           fold i's run dir (run.json, model/, a W&B run; all in one W&B group)

Resume: run the same command with ``resume=<audit dir>``: folds with a record are not trained again.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any, Callable

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from localize.cli import cli
from localize.config import CONF_DIR, compose, job_overrides
from localize.data.errors import DataError
from localize.tracking.record import atomic_write_json, git_state, read_record, redact_overrides
from localize.tracking.status import FAILED
from localize.utils import quiet_libraries

log = logging.getLogger(__name__)

AUDIT_RECORD = "audit.json"
ISSUES_FILE = "label_issues.jsonl"
# Keys of the audit's own command line that are not training settings of a fold.
_OWN_KEYS = ("audit.", "resume", "hydra.")


def fold_overrides(cfg: DictConfig, fold: int, out: str) -> list[str]:
    """The training overrides of one fold: the command line's, the fold, noise over every split."""
    keep = [o for o in job_overrides(cfg) or [] if not o.lstrip("+~").startswith(_OWN_KEYS)]
    k = int(cfg.audit.folds)
    return keep + [f"data.cv_folds={k}", f"data.cv_fold={fold}", f"seed={int(cfg.seed)}",
                   # Injected flips must be in the audited (test-fold) examples too.
                   "data.label_noise_splits=[train,validation,test]",
                   f"++logger.wandb.group={cfg.run_name}-{os.path.basename(out)}",
                   f"tags=[audit,{cfg.run_name}]"]


def out_of_fold(fold_dir: str, fold: int) -> tuple[list[dict], list[str], dict[str, Any]]:
    """Fold ``fold``'s test examples with the trained fold model's label probabilities:
    ``(rows, label names, the fold datamodule's data_info)``; each row adds ``example`` and ``fold``."""
    import torch

    from localize.runs import build_datamodule, load_run

    module = load_run(fold_dir)
    module.eval()
    dm = build_datamodule(module.run_info)
    dm.setup("test")
    test = dm.splits["test"]
    rows: list[dict] = []
    with torch.no_grad():
        for batch in dm.test_dataloader():
            for row in module.label_probabilities(batch):
                ex = test[row["index"]]
                rows.append({**row, "example": ex, "text": dm.example_text(ex), "fold": fold})
    return rows, list(module.label_names), dm.data_info


# ---- cleanlab, per kind of label (task.head) ------------------------------------------------
def entity_mean(given: list[np.ndarray], probs: list[np.ndarray], labels: list[str]) -> np.ndarray:
    """Per sentence: the mean probability of the given tag over its entity words (1 without entities).
    Blind to entities the annotator missed (given ``O``): only wrong types and boundaries move it."""
    o = labels.index("O")
    out = []
    for g, p in zip(given, probs):
        mask = g != o
        out.append(float(p[np.arange(len(g)), g][mask].mean()) if mask.any() else 1.0)
    return np.asarray(out)


def sentence_scores(given: list[np.ndarray], probs: list[np.ndarray], labels: list[str],
                    method: str) -> tuple[np.ndarray, list]:
    """``(per-sentence score, per-sentence token scores)``: cleanlab's ``min`` or ``softmin`` of the words'
    self-confidence, or :func:`entity_mean`; low: suspicious."""
    from cleanlab.token_classification.rank import get_label_quality_scores

    scores, token_scores = get_label_quality_scores(given, probs, sentence_score_method="min" if method ==
                                                    "entity_mean" else method)
    return (entity_mean(given, probs, labels) if method == "entity_mean" else scores), token_scores


SENTENCE_SCORES = ("softmin", "min", "entity_mean")


def token_issues(rows: list[dict], labels: list[str], score: str = "softmin") -> list[dict]:
    """NER: cleanlab's token-classification flags and scores; a sentence's score is ``score`` of its word
    tags' self-confidence (:func:`sentence_scores`)."""
    from cleanlab.token_classification.filter import find_label_issues

    given = [np.asarray(r["labels"], dtype=int) for r in rows]
    probs = [np.asarray(r["probs"], dtype=float) for r in rows]
    flagged: dict[int, set[int]] = {}
    for i, j in find_label_issues(given, probs):
        flagged.setdefault(int(i), set()).add(int(j))
    scores, token_scores = sentence_scores(given, probs, labels, score)
    out = []
    for i, r in enumerate(rows):
        ex, suggested = r["example"], probs[i].argmax(-1)
        words = [{"word": int(w), "token": ex["tokens"][w], "given": labels[g], "suggested": labels[s],
                  "score": round(float(token_scores[i].iloc[j]), 4)}
                 for j, (w, g, s) in enumerate(zip(r["words"], given[i], suggested))
                 if j in flagged.get(i, ()) or g != s]
        out.append({"id": ex.get("id"), "fold": r["fold"], "text": r["text"],
                    "tokens": ex["tokens"], "given": [labels[g] for g in given[i]],
                    "suggested": [labels[s] for s in suggested], "score": float(scores[i]),
                    "flagged": i in flagged, "words": words})
    return out


def example_issues(rows: list[dict], labels: list[str], score: str = "self_confidence") -> list[dict]:
    """Classification: cleanlab's ``find_label_issues`` (confident learning) and self-confidence scores."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    given = np.asarray([r["labels"] for r in rows], dtype=int)
    probs = np.stack([np.asarray(r["probs"], dtype=float) for r in rows])
    flagged = set(np.flatnonzero(find_label_issues(given, probs)).tolist())
    scores = get_label_quality_scores(given, probs)
    return [{"id": r["example"].get("id"), "fold": r["fold"], "text": r["text"],
             "given": labels[given[i]], "suggested": labels[int(probs[i].argmax())],
             "probability_given": round(float(probs[i, given[i]]), 4), "score": float(scores[i]),
             "flagged": i in flagged} for i, r in enumerate(rows)]


FINDERS: dict[str, Callable[..., list[dict]]] = {
    "token_classification": token_issues, "sequence_classification": example_issues}
# The rankings an audit with injected flips compares, per kind of label (the first: the default).
RANKINGS = {"token_classification": SENTENCE_SCORES, "sequence_classification": ("self_confidence",)}


def rank(issues: list[dict]) -> list[dict]:
    """Most suspicious first (lowest label-quality score; ties: flagged first, then by id)."""
    ordered = sorted(issues, key=lambda x: (x["score"], not x["flagged"], str(x["id"])))
    return [{"rank": k + 1, **x} for k, x in enumerate(ordered)]


def noise_recovery(ranked: list[dict], flipped_ids: set[str]) -> dict[str, Any]:
    """How well the ranking finds injected flips: precision@k for k = the number flipped (with a
    Wilson 95% interval; random ranking expects the flip rate), and precision/recall of cleanlab's flags."""
    k, n = len(flipped_ids), len(ranked)
    if not k:
        return {"flipped": 0, "note": "no example was flipped (sentences without entities are never flipped)"}
    hits = sum(str(x["id"]) in flipped_ids for x in ranked[:k])
    flagged = [x for x in ranked if x["flagged"]]
    found = sum(str(x["id"]) in flipped_ids for x in flagged)
    low, high = wilson(hits, k)
    return {"flipped": k, "examples": n, "k": k, "precision_at_k": hits / k, "precision_at_k_ci": [low, high],
            "random_expectation": k / n, "flagged": len(flagged),
            "flag_precision": found / len(flagged) if flagged else None, "flag_recall": found / k}


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion ``hits / n`` (95% by default)."""
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def audit(cfg: DictConfig) -> dict[str, Any]:
    """Train the folds (or keep those with a record), rank every example, write the audit dir."""
    import wandb

    from localize.tracking.atomic import atomic_file
    from localize.train import train

    start = time.perf_counter()
    out = os.path.abspath(str(cfg.paths.output_dir))
    head = str(cfg.task.head)
    if head not in FINDERS:
        raise ValueError(f"task={cfg.task.name} has no labels to audit: a label audit needs task=ner or "
                         f"task=classification")
    k = int(cfg.audit.folds)
    if k < 2:
        raise ValueError(f"audit.folds={k}: out-of-fold predictions need at least 2 folds. Fix: audit.folds=5")
    score = str(cfg.audit.sentence_score) if head == "token_classification" else RANKINGS[head][0]
    if score not in RANKINGS[head]:  # before any fold trains
        raise ValueError(f"audit.sentence_score={score!r} is not one of {list(RANKINGS[head])}. "
                         f"Fix: audit.sentence_score={RANKINGS[head][0]}")
    rows, labels, folds, noise = [], None, [], []
    for i in range(k):
        fold_dir = os.path.join(out, "folds", str(i))
        rec = read_record(fold_dir)
        if rec is None:
            try:
                rec = train(compose(fold_overrides(cfg, i, out), "train", out_dir=fold_dir))
            finally:
                wandb.finish()
        if rec.get("status") == FAILED:
            raise DataError(f"fold {i} did not finish ({rec.get('status_reason')}). Fix: look at {fold_dir}, then "
                            f"rerun with resume={out}")
        fold_rows, fold_labels, info = out_of_fold(fold_dir, i)
        if labels is not None and fold_labels != labels:
            raise DataError(f"fold {i} has label set {fold_labels}, fold 0 {labels}: the folds of one corpus share "
                            f"one. Fix: give data.labels=[...] explicitly")
        labels = fold_labels
        rows += fold_rows
        noise += [n for n in (info.get("label_noise") or {}).get("examples", []) if n["split"] == "test"]
        folds.append({"fold": i, "run_dir": fold_dir, "status": rec.get("status"), "examples": len(fold_rows),
                      "test": {m: v for m, v in (rec.get("metrics") or {}).items() if m.startswith("test/")}})
    ranked = rank(FINDERS[head](rows, labels, score))
    with atomic_file(os.path.join(out, ISSUES_FILE)) as f:
        for x in ranked:
            f.write(json.dumps(x, ensure_ascii=False) + "\n")
    top = int(cfg.audit.top)
    record = {
        "job_type": "audit", "run_name": str(cfg.run_name), "task": str(cfg.task.name),
        "locale": (OmegaConf.to_container(cfg.locale, resolve=True) or {}).get("code") if cfg.get("locale") else None,
        "seed": int(cfg.seed), "folds": folds, "examples": len(ranked), "labels": labels,
        "flagged": sum(x["flagged"] for x in ranked), "issues_file": ISSUES_FILE,
        "method": {"out_of_fold": f"{k}-fold cross-validation (data.cv_folds={k})",
                   "cleanlab": f"{FINDERS[head].__name__}: cleanlab {_cleanlab_version()}", "ranking": score},
        "top": [{key: x[key] for key in ("rank", "id", "text", "given", "suggested", "score", "flagged")}
                for x in ranked[:top]],
        "overrides": redact_overrides([o for o in job_overrides(cfg) or []]), "git": git_state(),
        "wall_s": time.perf_counter() - start,
    }
    if noise:
        flipped = {str(n["id"]) for n in noise}
        record["injected"] = noise_recovery(ranked, flipped)
        # Every ranking on the same out-of-fold probabilities: which one finds the flips (no retraining).
        record["injected"]["by_ranking"] = {
            m: {key: v for key, v in noise_recovery(ranked if m == score else rank(FINDERS[head](rows, labels, m)),
                                                    flipped).items()
                if key in ("precision_at_k", "precision_at_k_ci")} for m in RANKINGS[head]}
    atomic_write_json(os.path.join(out, AUDIT_RECORD), record)
    _print_summary(record, out)
    return record


def _cleanlab_version() -> str:
    import cleanlab

    return cleanlab.__version__


def _print_summary(record: dict[str, Any], out: str) -> None:
    inj = record.get("injected") or {}
    extra = ""
    if inj.get("k"):
        lo, hi = inj["precision_at_k_ci"]
        extra = (f" | injected flips: precision@{inj['k']}={inj['precision_at_k']:.2f} [{lo:.2f}, {hi:.2f}] "
                 f"(random {inj['random_expectation']:.2f}), flag recall {inj['flag_recall']:.2f}")
    print(f"[localize] {record['run_name']}: {record['flagged']} of {record['examples']} examples flagged{extra}\n"
          f"[localize] ranked issues: {os.path.join(out, ISSUES_FILE)}")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="audit")
def main(cfg: DictConfig) -> float | None:
    quiet_libraries()
    record = audit(cfg)
    return (record.get("injected") or {}).get("precision_at_k")


def run() -> None:
    """The ``localize-audit`` console script."""
    cli(main)


if __name__ == "__main__":
    run()
