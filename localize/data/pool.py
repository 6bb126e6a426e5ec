"""Unlabelled pools for active learning (``localize.select``) and training on a chosen subset.

* ``read_pool(path)``: the texts to choose from — a ``.txt`` file (one text per line) or a ``.jsonl`` file
  of ``{"text": ...}`` records (a doccano / Label Studio import) or of examples with their own ``tokens``
  (a corpus's sentences, e.g. written by ``localize.data.stages.write_examples``). Labels in the file are
  never read: selection sees text only.
* ``encode_pool(datamodule, pool)``: rows for the run's model, through the training encoding.
* ``data.train_ids=<file>``: keep only the training examples whose ``id`` the file lists (a selection's
  ``selected.jsonl``, or one id per line) — "the labels revealed so far" of a simulated labelling round.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from localize.data.errors import DataError
from localize.data.ner_readers import _json_records  # the one JSON-record reader (line numbers, one-line errors)

POOL_FORMS = "a .txt file (one text per line) or a .jsonl file of {\"text\": ...} or {\"tokens\": [...]} records"


def read_pool(path: str) -> list[dict[str, Any]]:
    """``[{"id", "text"} | {"id", "tokens"}]`` in file order (empty lines skipped; ids: the record's own
    ``id``, else ``<file name>:<line>``)."""
    if not os.path.isfile(path):
        raise DataError(f"pool={path}: no such file. Fix: pool=<{POOL_FORMS}>")
    name = os.path.basename(path)
    if path.endswith(".txt"):
        with open(path, encoding="utf-8") as f:
            out = [{"id": f"{name}:{n}", "text": line.rstrip("\r\n")} for n, line in enumerate(f, 1) if line.strip()]
    elif path.endswith(".jsonl"):
        out = [_pool_record(rec, path, n, name) for n, rec in _json_records(Path(path))]
    else:
        raise DataError(f"pool={path}: unknown pool form. Fix: pool=<{POOL_FORMS}>")
    if not out:
        raise DataError(f"pool={path} holds no text. Fix: pool=<{POOL_FORMS}>")
    if len({x["id"] for x in out}) != len(out):
        raise DataError(f"pool={path}: ids repeat. Fix: give every record its own \"id\" (or none: the line number)")
    return out


def _pool_record(rec: Any, path: str, n: int, name: str) -> dict[str, Any]:
    """One JSON pool record as ``{"id", "text"}`` or ``{"id", "tokens"}`` (its labels, if any, dropped)."""
    if not isinstance(rec, dict) or not (isinstance(rec.get("text"), str) or isinstance(rec.get("tokens"), list)):
        raise DataError(f"{path}:{n}: a pool record needs \"text\" (a string) or \"tokens\" (a list). "
                        f"Fix: pool=<{POOL_FORMS}>")
    item = {"id": str(rec.get("id", f"{name}:{n}"))}
    item.update({"tokens": [str(t) for t in rec["tokens"]]} if isinstance(rec.get("tokens"), list)
                else {"text": rec["text"]})
    return item


def encode_pool(datamodule: Any, pool: Sequence[dict]) -> list[dict[str, Any]]:
    """Model-input rows of a pool: texts through ``encode_texts``; pre-cut ``tokens`` as the training
    data's own words (NER)."""
    if all("tokens" in x for x in pool):
        if not hasattr(datamodule, "join_words"):
            raise DataError(f"the pool gives \"tokens\", which a {datamodule.task_name} model does not read. "
                            f"Fix: give \"text\" records")
        return datamodule.encode_texts([], words=[x["tokens"] for x in pool])
    if any("tokens" in x for x in pool):
        raise DataError("the pool mixes \"text\" and \"tokens\" records. Fix: one form per pool file")
    return datamodule.encode_texts([x["text"] for x in pool])


def pool_text(datamodule: Any, item: dict) -> str:
    return item["text"] if "text" in item else datamodule.join_words(item["tokens"])


def read_ids(path: str) -> list[str]:
    """The ids of a ``selected.jsonl`` (or any JSONL with ``id``) or of a file with one id per line."""
    if not os.path.isfile(path):
        raise DataError(f"data.train_ids={path}: no such file. Fix: data.train_ids=<selected.jsonl of localize.select> "
                        f"(or null for every training example)")
    ids = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line.startswith("{"):
                ids += [line] if line else []
                continue
            try:
                ids.append(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{path}:{n}: a JSON line without an \"id\". Fix: data.train_ids=<selected.jsonl "
                                f"of localize.select>, or one id per line") from None
    return ids


def keep_ids(train: Sequence[dict], path: str) -> list[dict]:
    """The training examples ``path`` lists, in training order; an id not in train is an error."""
    ids = set(read_ids(path))
    kept = [ex for ex in train if str(ex.get("id")) in ids]
    missing = len(ids) - len(kept)
    if missing:
        raise DataError(f"data.train_ids={path}: {missing} of its {len(ids)} ids are not in the training split. "
                        f"Fix: select from this run's training pool, with the same data.seed and data.split_sizes")
    return kept
