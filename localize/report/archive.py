"""What the report reads, copied apart from the log folder (``python -m localize.report ... --archive DIR``).

A log folder holds checkpoints and W&B files (hundreds of MB for a CV experiment) and is not committed, so a
later checkout could not regenerate a page without re-running it. The report reads only the records
(``run.json``, ``continual.json``) and the test predictions they name; copied with their relative paths,
they regenerate the same page: ``python -m localize.report DIR --out ...``.
"""
from __future__ import annotations

import json
import os
import shutil

from localize.report.records import CONTINUAL_RECORD
from localize.tracking.record import PREDICTIONS, RECORD


def archive_records(folder: str, dest: str) -> int:
    """Copy every record under ``folder`` and the predictions file it names to ``dest`` (same relative
    paths; files already there are replaced). Returns the number of records copied."""
    n = 0
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if os.path.abspath(root).startswith(os.path.abspath(dest) + os.sep):
            continue  # an archive inside the folder is not archived into itself
        for name in (RECORD, CONTINUAL_RECORD):
            if name not in files:
                continue
            keep = [name]
            if name == RECORD:
                with open(os.path.join(root, name)) as f:
                    meta = json.load(f).get("test_predictions") or {}
                keep.append(meta.get("file") or PREDICTIONS)
            target = os.path.join(dest, os.path.relpath(root, folder))
            os.makedirs(target, exist_ok=True)
            for k in keep:
                if os.path.isfile(os.path.join(root, k)):
                    shutil.copyfile(os.path.join(root, k), os.path.join(target, k))
            n += 1
    return n
