"""Tag or classify raw text with trained runs: ``python -m localize.predict +locale=ja adapters.ja=<run dir>``.

Generic over tasks: it loads an object with ``predict_texts(texts) -> list[dict]`` — one run's
``localize.runs.Predictor`` (``run=<dir>``, any method: the run's datamodule encodes, its module's
``predict_step`` predicts) or one locale's view of an ``AdapterBank`` (``adapters.<locale>=<dir>``;
the backbone is loaded once for all listed adapters; a single ``adapters.<locale>`` that is a full
fine-tune is served on its own, like ``run=``) — and writes one JSON object per input line.
A ``.po``/``.pot`` input goes to ``localize.data.translation.fill_po(in_path, out_path, predictor)``.

Confidence: NER words carry ``score`` (the softmax probability of the predicted tag at the word's
token) and each entity ``score``, the **mean** of its words' scores; classification carries
``score`` (the top label's probability) and ``probabilities`` (softmax over every label).
Translation has no score.

NER on text without spaces: text is cut with the locale's segmenter (ja: MeCab + IPAdic, the
training corpus's own unit; characters when it is not installed) — see ``localize/data/segment.py``.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Iterable, Iterator, TextIO

import hydra
from omegaconf import DictConfig, OmegaConf

from localize.config import CONF_DIR
from localize.tracking.atomic import atomic_file

log = logging.getLogger(__name__)

PO_SUFFIXES = (".po", ".pot")


def load_predictor(cfg: DictConfig):
    """The object whose ``predict_texts`` serves this call (see module docstring).

    Raises:
        ValueError: neither ``run=`` nor an adapter given; both given; no adapter for ``+locale``; a full
            fine-tune among several adapters.
    """
    from localize.adapters.bank import AdapterBank, full_fine_tunes
    from localize.runs import load_predictor as load_run_predictor

    locale = OmegaConf.to_container(cfg.locale, resolve=True) if cfg.get("locale") is not None else None
    adapters = {k: str(v) for k, v in (cfg.get("adapters") or {}).items() if v}
    # Inference settings of the runs' own datamodules (None keeps the run's).
    settings = {"eval_batch_size": int(cfg.get("batch_size") or 32), "segmenter": cfg.get("segmenter")}
    if cfg.get("run") and adapters:
        raise ValueError("give either run=<run dir> or adapters.<locale>=<run dir>, not both")
    if cfg.get("run"):
        decoding = [f"module.decoding={cfg.decoding}"] if cfg.get("decoding") else []
        return load_run_predictor(cfg.run, locale=locale, segmenter=settings["segmenter"],
                                  batch_size=settings["eval_batch_size"], extra_overrides=decoding)
    if not adapters:
        raise ValueError("nothing to predict with: pass run=<run dir>, or +locale=xx adapters.xx=<adapter run dir>")
    code = locale["code"] if locale else (next(iter(adapters)) if len(adapters) == 1 else None)
    if code is None:
        raise ValueError(f"several adapters ({sorted(adapters)}): pick one with +locale=<code>")
    if code not in adapters:
        raise ValueError(f"no adapter for locale '{code}' (given: {sorted(adapters)}): add adapters.{code}=<run dir>")
    full = full_fine_tunes(adapters)
    if full and len(adapters) > 1:
        name, run_dir = next(iter(full.items()))
        raise ValueError(f"adapters.{name} is a full fine-tune ({run_dir}), which cannot share a backbone with other "
                         f"adapters: serve it on its own with run={run_dir} (and no adapters.*)")
    if full:  # the README's adapters.<x>=<run> also serves a full fine-tune, alone
        log.info("adapters.%s is a full fine-tune: served on its own, not on a shared backbone", code)
        return load_run_predictor(full[code], locale=locale, segmenter=settings["segmenter"],
                                  batch_size=settings["eval_batch_size"])
    # +locale's text handling (normalisation, segmenter) goes to the adapter it selects.
    bank = AdapterBank.from_runs(adapters, {name: {**settings, "locale": locale if name == code else None}
                                            for name in adapters})
    log.info("adapter bank: %d adapter(s) on one backbone (%d load); serving '%s'", len(adapters),
             bank.backbone_loads, code)
    return bank.for_locale(code)


def read_lines(stream: TextIO) -> Iterator[str]:
    """Input texts, one per line (line ending removed; empty lines kept so output lines align)."""
    for line in stream:
        yield line.rstrip("\r\n")


def _batches(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_stream(predictor, lines: Iterable[str], out: TextIO, batch_size: int = 32) -> int:
    """Write one JSON object per input line; returns the number of lines."""
    n = 0
    for batch in _batches(lines, batch_size):
        for obj in predictor.predict_texts(batch):
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
            n += 1
        out.flush()
    return n


def predict(cfg: DictConfig) -> int | dict[str, Any]:
    """Run ``localize.predict`` for a composed config.

    Returns:
        The number of JSON lines written, or ``fill_po``'s counts for a PO input.
    """
    from localize.validate import check_config

    check_config(cfg)
    in_path, out_path = cfg.get("input"), cfg.get("output")
    predictor = load_predictor(cfg)
    if in_path and str(in_path).endswith(PO_SUFFIXES):
        try:
            from localize.data.translation import fill_po
        except ImportError as e:
            raise ImportError(f"PO files are filled by localize.data.translation.fill_po, which this checkout "
                              f"lacks ({e}); give a plain text file (one text per line) instead") from e
        if not out_path:
            raise ValueError(f"output=<file.po> is needed for a PO input ({in_path})")
        return fill_po(str(in_path), str(out_path), predictor)
    if in_path and not os.path.isfile(in_path):
        raise FileNotFoundError(f"input file '{in_path}' not found: pass input=<text file> or pipe text to stdin")
    batch = int(cfg.get("batch_size") or 32)
    source = open(in_path, encoding="utf-8") if in_path else sys.stdin
    if not in_path and sys.stdin.isatty():
        batch = 1  # interactive: answer each line as it is typed
    try:
        if not out_path:
            return predict_stream(predictor, read_lines(source), sys.stdout, batch)
        with atomic_file(out_path) as f:  # a crash never leaves a half-written output that looks complete
            return predict_stream(predictor, read_lines(source), f, batch)
    finally:
        if in_path:
            source.close()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    from localize.utils import quiet_libraries

    quiet_libraries()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="[%(name)s] %(message)s")
    n = predict(cfg)
    log.info("%s written to %s", n if isinstance(n, dict) else f"{n} item(s)", cfg.get("output") or "stdout")


def run() -> None:
    """The ``localize-predict`` console script (``python -m localize.predict`` is the same)."""
    from localize.cli import cli

    cli(main)


if __name__ == "__main__":
    run()
