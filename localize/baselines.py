"""Reference baselines on the exact split a run uses, recorded like runs so reports show them beside
the models: ``python -m localize.baselines +locale=ja task=ner``.

A model that does not beat these has learned nothing worth reporting.
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter
from typing import Any, Callable

import hydra
from omegaconf import DictConfig

from localize.config import CONF_DIR
from localize.data.entities import entity_spans
from localize.tracking.metrics import span_scores
from localize.tracking.intervals import TestPredictions
from localize.tracking.record import RECORD, atomic_write_json, build_record, write_test_predictions
from localize.utils import build, check_writable, resolved_config

log = logging.getLogger(__name__)


def ner_majority(train: list[dict], test: list[dict]) -> list[list[str]]:
    """Every word gets the most frequent training tag (``O``): entity F1 0 by construction."""
    tag = Counter(t for ex in train for t in ex["tags"]).most_common(1)[0][0]
    return [[tag] * len(ex["tokens"]) for ex in test]


def ner_dictionary(train: list[dict], test: list[dict]) -> list[list[str]]:
    """Greedy longest match of entity strings (word sequences) seen in train, with their type."""
    lexicon: dict[tuple[str, ...], Counter] = {}
    for ex in train:
        for start, end, kind in entity_spans(ex["tags"]):  # the entities the scorer counts
            lexicon.setdefault(tuple(ex["tokens"][start:end]), Counter())[kind] += 1
    longest = max((len(k) for k in lexicon), default=0)
    out = []
    for ex in test:
        words, tags, i = ex["tokens"], ["O"] * len(ex["tokens"]), 0
        while i < len(words):
            for n in range(min(longest, len(words) - i), 0, -1):
                kind = lexicon.get(tuple(words[i : i + n]))
                if kind:
                    label = kind.most_common(1)[0][0]
                    tags[i : i + n] = [f"B-{label}"] + [f"I-{label}"] * (n - 1)
                    i += n
                    break
            else:
                i += 1
        out.append(tags)
    return out


def _ner_scores(predict: Callable) -> Callable[[dict], tuple[dict[str, float], TestPredictions]]:
    def score(splits: dict) -> tuple[dict[str, float], TestPredictions]:
        pred = predict(splits["train"], splits["test"])
        gold = [ex["tags"] for ex in splits["test"]]
        rows = [{"index": i, "gold": list(g), "pred": p} for i, (g, p) in enumerate(zip(gold, pred))]
        return {f"test/{k}": v for k, v in span_scores(gold, pred).items()}, TestPredictions("spans", rows)

    return score


def _cls_majority(splits: dict) -> tuple[dict[str, float], TestPredictions]:
    from sklearn.metrics import f1_score  # noqa: PLC0415  (sklearn comes with seqeval)

    label = Counter(ex["label"] for ex in splits["train"]).most_common(1)[0][0]
    gold = [ex["label"] for ex in splits["test"]]
    pred = [label] * len(gold)
    rows = [{"index": i, "gold": g, "pred": p} for i, (g, p) in enumerate(zip(gold, pred))]
    return ({"test/accuracy": sum(g == p for g, p in zip(gold, pred)) / len(gold),
             "test/f1_macro": f1_score(gold, pred, average="macro", zero_division=0)}, TestPredictions("labels", rows))


def _copy_source(splits: dict) -> tuple[dict[str, float], TestPredictions]:
    from localize.tracking.mt_metrics import translation_scores

    test = splits["test"]
    scores = translation_scores([ex["source"] for ex in test], [ex["source"] for ex in test],
                                [ex["target"] for ex in test], "xx")
    rows = [{"index": i, "source": ex["source"], "reference": ex["target"], "hypothesis": ex["source"]}
            for i, ex in enumerate(test)]
    return ({f"test/{k}": v for k, v in scores.items() if isinstance(v, (int, float))},
            TestPredictions("translation", rows, {"target_lang": "xx"}))


# task name -> {baseline name -> scorer(splits) -> (metrics, per-example test predictions)}; the
# predictions give the baseline the same intervals as a model and let the report pair them.
BASELINES: dict[str, dict[str, Callable[[dict], tuple[dict[str, float], TestPredictions]]]] = {
    "ner": {"majority": _ner_scores(ner_majority), "dictionary": _ner_scores(ner_dictionary)},
    "sentiment": {"majority": _cls_majority},
    "classification": {"majority": _cls_majority},
    "translation": {"copy_source": _copy_source},
}


def run_baselines(cfg: DictConfig) -> list[dict[str, Any]]:
    """Score every baseline of ``cfg.task.name`` on the run's split; one record per baseline."""
    datamodule = build(cfg.data)
    splits = datamodule.splits
    records = []
    for name, score in BASELINES.get(cfg.task.name, {}).items():
        start = time.perf_counter()
        out_dir = os.path.join(cfg.paths.output_dir, f"baseline_{name}")
        check_writable(out_dir)
        metrics, predictions = score(splits)
        record = build_record(
            cfg, job_type="baseline", metrics=metrics, start=start, datamodule=datamodule, config=resolved_config(cfg),
            predictions=predictions,
            perf={"epochs": 0, "s_per_epoch": 0.0},
            run_name=cfg.run_name.replace(f"-{cfg.adapter.name}-", f"-baseline_{name}-"),
            model="none", adapter=f"baseline_{name}", tags=["baseline"],
            params={"total": 0, "trainable": 0, "trainable_share": 0.0}, storage={"stored_mb": 0.0},
        )
        write_test_predictions(out_dir, predictions)
        atomic_write_json(os.path.join(out_dir, RECORD), record)
        print(f"[localize] baseline {name}: " + ", ".join(f"{k}={v:.4f}" for k, v in record["metrics"].items()
                                                         if k in ("test/f1", "test/f1_macro", "test/accuracy",
                                                                  "test/chrf")))
        records.append(record)
    return records


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    run_baselines(cfg)


def run() -> None:
    """The ``localize-baselines`` console script (``python -m localize.baselines`` is the same)."""
    from localize.cli import cli

    cli(main)


if __name__ == "__main__":
    run()
