"""Peak memory is per job: a multirun's second job is not charged with the first job's peak.
Where the kernel refuses the reset (some sandboxes), the record says the peak is the process's."""
from __future__ import annotations

from localize.tracking.callbacks import peak_memory_mb, peak_rss_scope, reset_peak_memory


_PROBE = """
import json, torch
from localize.tracking.callbacks import peak_memory_mb, peak_rss_scope, reset_peak_memory
big = torch.ones(100_000_000, dtype=torch.float32)  # 400 MB touched
big.add_(1)
with_big = peak_memory_mb()["peak_rss_mb"]
del big
worked = reset_peak_memory()
print(json.dumps({"worked": worked, "with_big": with_big, "after": peak_memory_mb()["peak_rss_mb"],
                  "scope": peak_rss_scope()}))
"""


def test_reset_starts_a_new_peak_or_says_it_could_not():
    # A fresh process: inside the test session, freed-but-kept heap pages of earlier tests would
    # absorb the 400 MB and the peak would not move at all.
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r["worked"]:
        assert r["scope"] == "job"
        assert r["with_big"] - r["after"] > 300
    else:  # the lifetime peak stays, and the record must not claim it is this job's
        assert r["scope"] == "process"
        assert r["after"] >= r["with_big"] - 1
