"""Dynamic padding: pad each batch to its own longest sequence."""
from __future__ import annotations

from typing import Any

import torch

# Padding value per field; fields not listed are passed through as tensors without padding.
PAD_VALUES = {"input_ids": None, "attention_mask": 0, "labels": -100, "word_index": -1, "word_labels": -100}


class PadCollator:
    """Pads variable-length fields of a list of examples into a batch dict of tensors.

    Args:
        pad_token_id: the tokenizer's pad id (used for ``input_ids``).
        pad_to_multiple_of: round lengths up (tensor-core friendly on GPU); 1 on CPU.
        padding_side: ``right``, or ``left`` (decoder-only generation: every prompt ends at the
            last position, so new tokens line up across the batch).
        extra_pad_values: padding values of task-specific fields (e.g. ``prompt_ids``).
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 1, padding_side: str = "right",
                 extra_pad_values: dict[str, int] | None = None) -> None:
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        self.pad_values = {**PAD_VALUES, "input_ids": pad_token_id, **(extra_pad_values or {})}
        self.multiple = pad_to_multiple_of
        self.left = padding_side == "left"

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for key in examples[0]:
            values = [ex[key] for ex in examples]
            if key in self.pad_values and isinstance(values[0], (list, tuple)):
                width = max(len(v) for v in values)
                width = -(-width // self.multiple) * self.multiple
                pad = self.pad_values[key]
                rows = [[pad] * (width - len(v)) + list(v) if self.left else list(v) + [pad] * (width - len(v))
                        for v in values]
                batch[key] = torch.tensor(rows, dtype=torch.long)
            elif isinstance(values[0], (int, float)):  # per-example scalars: class label, index
                batch[key] = torch.tensor(values)
            elif isinstance(values[0], str):  # raw text (e.g. source/reference for generation metrics)
                batch[key] = values
        return batch
