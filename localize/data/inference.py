"""Raw text → predictions with the datamodule's own encoding (the path ``localize.predict`` takes).

The datamodule encodes (``encode_texts``) and decodes (``decode_outputs``); the model side only
maps a collated batch to one output per row (a LightningModule's ``predict_step``, or an adapter
bank's active adapter), so inference sees exactly the units training saw.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from localize.data.datamodule import LocalizeDataModule


def predict_texts(datamodule: LocalizeDataModule, predict_batch: Callable[[dict[str, Any]], Sequence[Any]],
                  texts: Sequence[str], batch_size: int | None = None,
                  device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """Encode ``texts``, run ``predict_batch`` on length-sorted batches, decode per text.

    Args:
        datamodule: the run's datamodule (tokenizer, locale, encoding settings, label set).
        predict_batch: collated batch → one output per row (tensor rows or list items).
        texts: raw texts.
        batch_size: rows per batch (default: ``datamodule.eval_batch_size``).
        device: where the model is; each batch's tensors are moved there.

    Returns:
        One dict per text, in input order (see the datamodule's ``decode_outputs``).
    """
    texts = list(texts)
    rows = datamodule.encode_texts(texts)
    size = batch_size or datamodule.eval_batch_size
    # Rows of similar length share a batch: less padding, fewer wasted generation steps.
    order = sorted(range(len(rows)), key=lambda i: (len(_ids(rows[i])), i))
    collate = datamodule._collator()
    outputs: list[Any] = [None] * len(rows)
    with torch.no_grad():
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v
                     for k, v in collate([rows[i] for i in chunk]).items()}
            for i, out in zip(chunk, predict_batch(batch)):
                outputs[i] = out
    return datamodule.decode_outputs(texts, rows, outputs)


def _ids(row: dict[str, Any]) -> list[int]:
    return row["input_ids"] if "input_ids" in row else row["prompt_ids"]
