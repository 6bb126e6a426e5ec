"""Peak memory is per job: a multirun's second job is not charged with the first job's peak.
Where the kernel refuses the reset (some sandboxes), the record says the peak is the process's."""
from __future__ import annotations

from localize.tracking.callbacks import peak_memory_mb, peak_rss_scope, reset_peak_memory


def test_reset_starts_a_new_peak_or_says_it_could_not():
    import torch

    big = torch.ones(100_000_000, dtype=torch.float32)  # 400 MB touched
    big.add_(1)
    with_big = peak_memory_mb()["peak_rss_mb"]
    del big
    worked = reset_peak_memory()
    after = peak_memory_mb()["peak_rss_mb"]
    if worked:
        assert peak_rss_scope() == "job"
        assert with_big - after > 300
    else:  # the lifetime peak stays, and the record must not claim it is this job's
        assert peak_rss_scope() == "process"
        assert after >= with_big - 1
