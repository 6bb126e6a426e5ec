"""The converted-model cache: build a folder once, atomically, under a lock; reuse it afterwards."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import shutil
import tempfile
import time
from typing import Callable

from localize.tracking.atomic import atomic_folder

MARKER = "conversion_complete.json"  # written last; a folder without it is never trusted


def cache_root(cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """``cache_dir``, else ``$LOCALIZE_CACHE``, else ``~/.cache/localize``."""
    if cache_dir is not None:
        return pathlib.Path(cache_dir)
    env = os.environ.get("LOCALIZE_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "localize"


@contextlib.contextmanager
def locked(lock_path: pathlib.Path):
    """Exclusive advisory lock; serialises conversion across processes (e.g. DDP ranks)."""
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_folder(name: str, build: Callable[[pathlib.Path, pathlib.Path], dict],
                  cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Return ``<cache>/<name>``, building it first if it has no completion marker.

    ``build(out_dir, work_dir)`` writes the folder into a temp dir and returns facts for the marker;
    ``work_dir`` is scratch space removed afterwards. The marker is written last and the folder is
    renamed into place, so concurrent callers and interrupted builds never see a partial folder; a
    marker-less folder and stale temp dirs are removed (under the lock) and rebuilt.
    """
    cache = cache_root(cache_dir)
    final = cache / name
    if (final / MARKER).is_file():  # fast path, no lock needed: the marker only appears via rename
        return final
    cache.mkdir(parents=True, exist_ok=True)
    with locked(cache / f".{name}.lock"):
        if (final / MARKER).is_file():  # another process finished while we waited
            return final
        for stale in [final, *cache.glob(f".{name}.tmp-*"), *cache.glob(f".{name}.work-*")]:
            if stale.exists():
                shutil.rmtree(stale)
        work = pathlib.Path(tempfile.mkdtemp(prefix=f".{name}.work-", dir=cache))
        try:  # 0o755: mkdtemp makes it 0700; the cache may be shared
            with atomic_folder(final, prefix=f".{name}.tmp-", mode=0o755) as tmp:
                t0 = time.perf_counter()
                facts = build(tmp, work) or {}
                for f in tmp.iterdir():  # safetensors writes 0600; keep a shared cache readable
                    f.chmod(0o644)
                facts["seconds"] = round(time.perf_counter() - t0, 2)
                (tmp / MARKER).write_text(json.dumps(facts, ensure_ascii=False, indent=1))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final
