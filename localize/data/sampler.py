"""Length-grouped batching: batches of similar length waste less compute on padding."""
from __future__ import annotations

import random
from typing import Iterator, Sequence

from torch.utils.data import Sampler


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffles, sorts within mega-buckets of ``bucket_factor`` batches by length, then shuffles
    the batches — random order with little padding (the Trainer's ``group_by_length`` idea).

    Args:
        lengths: length of each example.
        batch_size: examples per batch.
        seed: base seed; the epoch is added so every epoch differs but runs are reproducible.
        bucket_factor: batches per sorted bucket.
        shuffle: False for evaluation (keeps sorted order).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, bucket_factor: int = 50,
                 shuffle: bool = True) -> None:
        if batch_size <= 0:
            raise ValueError(f"data.batch_size must be > 0, got {batch_size}")
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.bucket_factor, self.shuffle, self.epoch = bucket_factor, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        order = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(order)
        size = self.batch_size * self.bucket_factor
        batches = []
        for start in range(0, len(order), size):
            bucket = sorted(order[start : start + size], key=lambda i: self.lengths[i])
            batches += [bucket[i : i + self.batch_size] for i in range(0, len(bucket), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return iter(batches)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)


def padding_fraction(lengths: Sequence[int], batches: list[list[int]]) -> float:
    """Share of padded positions when ``batches`` are padded to their longest example."""
    total = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 1.0 - sum(lengths) / max(total, 1)
