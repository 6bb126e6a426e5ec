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
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 1) -> None:
        self.pad_values = {**PAD_VALUES, "input_ids": pad_token_id}
        self.multiple = pad_to_multiple_of

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for key in examples[0]:
            values = [ex[key] for ex in examples]
            if key in self.pad_values and isinstance(values[0], (list, tuple)):
                width = max(len(v) for v in values)
                width = -(-width // self.multiple) * self.multiple
                pad = self.pad_values[key]
                batch[key] = torch.tensor([list(v) + [pad] * (width - len(v)) for v in values], dtype=torch.long)
            elif isinstance(values[0], (int, float)):  # per-example scalars: class label, index
                batch[key] = torch.tensor(values)
        return batch
