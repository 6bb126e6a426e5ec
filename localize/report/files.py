"""Files of the report are written whole or not at all (``tracking.atomic.atomic_file``)."""
from __future__ import annotations

import pandas as pd

from localize.tracking.atomic import atomic_file


def write_text(path: str, text: str) -> str:
    with atomic_file(path) as f:
        f.write(text)
    return path


def write_csv(path: str, df: pd.DataFrame) -> str:
    with atomic_file(path, newline="") as f:  # newline="": the csv module's own line ends, as to a path
        df.to_csv(f, index=False)
    return path
