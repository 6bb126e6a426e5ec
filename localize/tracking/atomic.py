"""Write temp, then rename: the one writer for every file or folder that must never look whole
while half-written (run records, predictions, reports, model and cache folders).

    with atomic_file("run.json") as f:
        json.dump(record, f)

The temp sits beside the target (same filesystem, so ``os.replace`` is atomic), is flushed and
fsynced before the rename, and is removed if the block raises; the target is then untouched.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TMP_PREFIX = ".tmp-"


class WriteFailed(OSError):
    """A write that the disk refused (full, quota, read-only), re-raised by its caller with the target
    and the fix in ``strerror``: one line (``localize.cli`` prints it without a traceback)."""

    def __str__(self) -> str:
        return str(self.strerror)


def _fsync_dir(folder: str | os.PathLike) -> None:
    """Persist a rename (the directory entry) as well as the data; not every platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8",
                **open_kwargs: Any) -> Iterator[IO]:
    """Yield a file open on a temp beside ``path``; on success it replaces ``path``.

    Args:
        path: The target; its folder is created if needed.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding: Text encoding (ignored for binary modes).
        **open_kwargs: Passed to ``open`` (``newline``...).

    The temp is created with ``O_EXCL`` and mode 0o666 (so the target gets the umask's usual
    permissions; ``mkstemp`` would make it 0600), flushed and fsynced, then ``os.replace``-d.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    target = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f"{TMP_PREFIX}{uuid.uuid4().hex}-{os.path.basename(target)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding, **open_kwargs}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        _fsync_dir(folder)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, prefix: str = TMP_PREFIX, mode: int | None = None) -> Iterator[Path]:
    """Yield a temp folder beside ``path`` to fill; on success it replaces ``path`` (an existing
    folder is moved aside first and deleted after the rename, so ``path`` is never half-deleted).

    Args:
        path: The target folder.
        prefix: Temp-name prefix (callers that sweep stale temps glob for it).
        mode: ``chmod`` of the folder (``mkdtemp`` makes it 0700); None keeps 0700.
    """
    target = Path(os.path.abspath(os.fspath(path)))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix))
    if mode is not None:
        tmp.chmod(mode)
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.parent / f"{prefix}old-{uuid.uuid4().hex}"
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
