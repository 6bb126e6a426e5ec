"""The run dir is checked before Hydra creates it, so an unwritable log dir gets our message.

Hydra makes ``hydra.run.dir`` (``hydra.sweep.dir`` in a multirun) itself, before the job starts: an
unwritable ``paths.log_dir`` used to fail there with a bare ``PermissionError`` traceback, and
``localize.utils.check_writable``'s message (which names the fix) was never reached.
"""
from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from localize.cli import EXIT_USER_ERROR, one_line
from localize.utils import check_writable


class WritableRunDir(Callback):
    """``check_writable`` on the run dir (or the sweep dir) in ``on_run_start`` / ``on_multirun_start``,
    which Hydra calls before it creates that dir: one line with the fix (``paths.log_dir=<writable
    dir> or LOCALIZE_LOG_DIR``) and exit code 2, as ``localize.cli`` prints user errors.

    Hydra turns an exception raised by a callback into a warning and goes on (to the traceback), so
    the callback ends the process itself (``SystemExit`` is not an ``Exception``).
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Resolved on the config Hydra goes on with: cached ${now:} / ${run_id:} keep their values.
        _check(str(OmegaConf.select(config, "hydra.run.dir")))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(str(OmegaConf.select(config, "hydra.sweep.dir")))


def _check(path: str) -> None:
    try:
        check_writable(path)
    except PermissionError as e:
        print(f"localize: {one_line(e)}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
