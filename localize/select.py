"""Active learning: which texts to label next. ``python -m localize.select run=<run dir> pool=<file> n=<k>
acquisition=entropy|margin|random|diverse``
(``strategy=`` names the continual strategies).

The run's model reads every pool text through the training encoding (``localize.data.pool``) and the
acquisition function ranks them:

=========  ===========================================================================================
entropy    the model's predictive entropy, summed over a sentence's words (NER: total token entropy,
           which favours sentences with more to learn) or of the one label (classification)
margin     1 - (p1 - p2), the gap between the two most likely labels, summed like entropy
random     a seeded shuffle (the baseline every curve is read against)
diverse    k-center greedy on the model's mean-pooled last hidden states: each pick is the text farthest
           from those picked so far (a core-set; the first pick is seeded)
=========  ===========================================================================================

``select.aggregate`` (``sum``, ``mean``, ``max``) changes how word scores make a sentence's score.
Writes ``<out>/selected.jsonl`` (rank, id, text, score; the pool's tokens for pre-cut NER pools) — a file
annotation tools import and ``data.train_ids=`` reads — and ``<out>/select.json``, the record.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from typing import Any, Callable, Sequence

import hydra
import numpy as np
from omegaconf import DictConfig

from localize.cli import cli
from localize.config import CONF_DIR, job_overrides
from localize.data.errors import DataError
from localize.tracking.record import atomic_write_json, git_state, redact_overrides
from localize.utils import quiet_libraries

log = logging.getLogger(__name__)

SELECTED = "selected.jsonl"
SELECT_RECORD = "select.json"
_EPS = 1e-12


def entropy(p: np.ndarray) -> np.ndarray:
    """Per row (word or text): the entropy of its label distribution (nats)."""
    return -(p * np.log(p + _EPS)).sum(-1)


def margin(p: np.ndarray) -> np.ndarray:
    """Per row: 1 - (top probability - second): 1 when the two best labels tie."""
    top = np.sort(p, -1)
    return 1.0 - (top[..., -1] - top[..., -2])


UNCERTAINTY: dict[str, Callable[[np.ndarray], np.ndarray]] = {"entropy": entropy, "margin": margin}
AGGREGATE: dict[str, Callable[[np.ndarray], float]] = {"sum": np.sum, "mean": np.mean, "max": np.max}
STRATEGIES = (*UNCERTAINTY, "random", "diverse")


def uncertainty_scores(probs: Sequence[np.ndarray], strategy: str, aggregate: str = "sum") -> np.ndarray:
    """One score per text (higher: label first) from its probabilities (``(labels,)`` or ``(words, labels)``)."""
    score, agg = UNCERTAINTY[strategy], AGGREGATE[aggregate]
    return np.array([float(agg(score(np.atleast_2d(p)))) if np.size(p) else 0.0 for p in probs])


def k_center(emb: np.ndarray, n: int, seed: int) -> list[int]:
    """Greedy k-center (core-set): a seeded first pick, then each time the point farthest from the picks."""
    first = random.Random(f"{seed}/k-center").randrange(len(emb))
    picked = [first]
    dist = np.linalg.norm(emb - emb[first], axis=1)
    while len(picked) < n:
        nxt = int(np.argmax(dist))
        picked.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(emb - emb[nxt], axis=1))
    return picked


def label_probs(module: Any, batch: dict[str, Any]) -> list[np.ndarray]:
    """Per row of a batch: the label probabilities (``(labels,)`` or ``(words, labels)``)."""
    return [out["probs"] for out in module.label_probabilities(batch)]


def pooled_states(module: Any, batch: dict[str, Any]) -> list[np.ndarray]:
    """Per row of a batch: the mean-pooled last hidden state."""
    hidden = module.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          output_hidden_states=True).hidden_states[-1].float()
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return list(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu().numpy())


def model_outputs(module: Any, rows: list[dict], collate: Callable, batch_size: int,
                  per_batch: Callable[[Any, dict[str, Any]], list[Any]]) -> list[Any]:
    """``per_batch(module, batch)`` (:func:`label_probs` or :func:`pooled_states`) for every row, in row order."""
    import torch

    out: list[Any] = [None] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]["input_ids"]), i))  # less padding
    module.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            for i, value in zip(chunk, per_batch(module, collate([rows[i] for i in chunk]))):
                out[i] = value
    return out


def check_acquisition(strategy: str, aggregate: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"acquisition={strategy!r} is not one of {list(STRATEGIES)}. Fix: acquisition=entropy")
    if aggregate not in AGGREGATE:
        raise ValueError(f"select.aggregate={aggregate!r} is not one of {list(AGGREGATE)}. Fix: select.aggregate=sum")


def rank_pool(module: Any, datamodule: Any, pool: list[dict], strategy: str, seed: int,
              aggregate: str = "sum", batch_size: int = 32) -> list[tuple[int, float]]:
    """``(pool index, score)`` of every pool text, in selection order (``diverse``: its greedy order)."""
    from localize.data.pool import encode_pool

    check_acquisition(strategy, aggregate)
    if strategy == "random":
        order = list(range(len(pool)))
        random.Random(f"{seed}/select").shuffle(order)
        return [(i, 0.0) for i in order]
    rows, collate = encode_pool(datamodule, pool), datamodule._collator()
    if strategy == "diverse":
        order = k_center(np.stack(model_outputs(module, rows, collate, batch_size, pooled_states)), len(pool), seed)
        return [(i, float(k)) for k, i in enumerate(order)]  # score: the pick's position
    scores = uncertainty_scores(model_outputs(module, rows, collate, batch_size, label_probs), strategy, aggregate)
    return sorted(((i, float(s)) for i, s in enumerate(scores)), key=lambda t: (-t[1], t[0]))


def select(cfg: DictConfig) -> dict[str, Any]:
    """Rank ``cfg.pool`` with the run's model and write the first ``cfg.n`` to ``<out>/selected.jsonl``."""
    from localize.data.pool import pool_text, read_pool
    from localize.runs import build_datamodule, load_run
    from localize.tracking.atomic import atomic_file

    start = time.perf_counter()
    if not cfg.get("run"):
        raise ValueError("select needs the model that scores the pool: run=<run dir> (a trained NER or "
                         "classification run)")
    if not cfg.get("pool"):
        raise ValueError("select needs the texts to choose from: pool=<file.txt|file.jsonl>")
    n = cfg.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n}: the number of texts to select is a positive integer. Fix: n=100")
    seed, strategy, aggregate = int(cfg.seed), str(cfg.acquisition), str(cfg.select.aggregate)
    check_acquisition(strategy, aggregate)
    pool = read_pool(str(cfg.pool))
    if n > len(pool):
        raise DataError(f"n={n} but pool={cfg.pool} holds {len(pool)} texts. Fix: n={len(pool)}")
    module = load_run(str(cfg.run))
    dm = build_datamodule(module.run_info)
    try:
        ranked = rank_pool(module, dm, pool, strategy, seed, aggregate, int(cfg.batch_size))
    except NotImplementedError as e:  # a translation run: no label distribution to be uncertain about
        raise ValueError(f"{e}. Fix: run=<an NER or classification run dir>") from None
    out = os.path.abspath(str(cfg.paths.output_dir))
    os.makedirs(out, exist_ok=True)
    chosen = ranked[:n]
    with atomic_file(os.path.join(out, SELECTED)) as f:
        for k, (i, score) in enumerate(chosen, 1):
            item = {"rank": k, "id": pool[i]["id"], "text": pool_text(dm, pool[i]), "score": round(score, 6)}
            if "tokens" in pool[i]:
                item["tokens"] = pool[i]["tokens"]
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    record = {"job_type": "select", "run": str(cfg.run), "pool": str(cfg.pool), "pool_size": len(pool), "n": n,
              "acquisition": strategy, "aggregate": aggregate if strategy in UNCERTAINTY else None, "seed": seed,
              "selected": [pool[i]["id"] for i, _ in chosen], "selected_file": SELECTED,
              "score_mean_selected": float(np.mean([s for _, s in chosen])) if strategy in UNCERTAINTY else None,
              "score_mean_pool": float(np.mean([s for _, s in ranked])) if strategy in UNCERTAINTY else None,
              "git": git_state(), "wall_s": time.perf_counter() - start}
    record["overrides"] = redact_overrides(job_overrides(cfg) or [])
    atomic_write_json(os.path.join(out, SELECT_RECORD), record)
    print(f"[localize] selected {n} of {len(pool)} texts by {strategy}: {os.path.join(out, SELECTED)}")
    return record


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="select")
def main(cfg: DictConfig) -> None:
    quiet_libraries()
    select(cfg)


def run() -> None:
    """The ``localize-select`` console script."""
    cli(main)


if __name__ == "__main__":
    run()
