"""Files of the report are written whole or not at all (temp file, then rename)."""
from __future__ import annotations

from localize.tracking.atomic import atomic_file


def _atomic_write(path: str, write) -> str:
    """Call ``write(file)`` on a temp file beside ``path``, then rename it over ``path``."""
    with atomic_file(path, "wb") as f:
        write(f)
    return path
