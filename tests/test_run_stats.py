"""Peak memory is per job: a multirun's second job is not charged with the first job's peak."""
from __future__ import annotations

import sys

import pytest

from localize.tracking.callbacks import peak_memory_mb, reset_peak_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak reset uses /proc/self/clear_refs")
def test_reset_starts_a_new_peak():
    import torch

    big = torch.ones(100_000_000, dtype=torch.float32)  # 400 MB touched
    big.add_(1)
    with_big = peak_memory_mb()["peak_rss_mb"]
    del big
    reset_peak_memory()
    after = peak_memory_mb()["peak_rss_mb"]
    assert with_big - after > 300
