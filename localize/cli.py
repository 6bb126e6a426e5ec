"""The command line's error contract: a user error is one line, ``localize: <message>``, exit code 2.

Every entry point ends with ``cli(main)`` instead of ``main()``. User errors are Hydra's own (an
unknown config option, an override that does not parse or compose) and the errors our code raises
with their fix (``DataError``, ``ValueError``, ``FileNotFoundError``, ``PermissionError``,
``FileExistsError``, ``WriteFailed`` (a full disk) raised inside ``localize/``). Anything else — a bug,
a library's own error — keeps its traceback. ``HYDRA_FULL_ERROR=1`` shows the traceback of every error, as in Hydra.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Callable

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

from localize.tracking.atomic import WriteFailed

PACKAGE_DIR = str(Path(__file__).resolve().parent)
HYDRA_USER_ERRORS = (MissingConfigException, ConfigCompositionException, OverrideParseException)
OUR_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError, WriteFailed)
EXIT_USER_ERROR = 2
_SET_BY_CLI = "LOCALIZE_CLI_FULL_ERROR"


def _raised_in_package(tb: TracebackType | None) -> bool:
    """The innermost frame is ours: the error was raised by localize, with its fix."""
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return last is not None and os.path.abspath(last.tb_frame.f_code.co_filename).startswith(PACKAGE_DIR + os.sep)


def is_user_error(e: BaseException) -> bool:
    """Hydra's composition errors, and our own errors of the user-error types (``DataError`` is a ValueError)."""
    if isinstance(e, HYDRA_USER_ERRORS):
        return True
    return isinstance(e, OUR_USER_ERRORS) and _raised_in_package(e.__traceback__)


def _no_such_key(text: str) -> str:
    """Hydra's "Could not override 'data.batchsize'. To append to your config use +data.batchsize=3": the
    appended key would reach the datamodule, which has no such argument; name the nearest knob instead."""
    import difflib

    from localize.validate import KNOBS

    m = re.search(r"Could not override '([\w.]+)'\.\s*To append to your config use \+\S+?=(\S*)", text)
    if not m:
        return text
    key, value = m[1], m[2]
    near = difflib.get_close_matches(key, list(KNOBS), n=1, cutoff=0.75)
    fix = (f"{near[0]}={value}" if near else
           f"check the spelling (python -m localize.train --cfg job prints every key); +{key}={value} adds a new "
           f"key, which only a config node that takes it accepts")
    return f"{key} is not a config key. Fix: {fix}"


def one_line(e: BaseException) -> str:
    """The message on one line; Hydra's option lists become ``a, b, c`` and its search path is dropped."""
    text = _no_such_key(str(e).split("Config search path:")[0])
    text = re.sub(r"\n\s*Available options in '([^']+)':((?:\n[ \t]+\S[^\n]*)+)",
                  lambda m: f". Available options in '{m[1]}': " + ", ".join(m[2].split()), text)
    return re.sub(r"\s+", " ", text).strip()


def cli(main: Callable[[], Any]) -> Any:
    """Run a ``@hydra.main`` function; a user error prints one line and exits with code 2.

    Hydra prints its own errors (several lines, a hint about ``HYDRA_FULL_ERROR``); here it is
    asked to re-raise them instead (``HYDRA_FULL_ERROR`` set for the call), so that this function
    decides what is shown. The user's own ``HYDRA_FULL_ERROR=1`` keeps every traceback.
    """
    # Child processes (DDP ranks re-run the command) inherit the variable set here: _SET_BY_CLI tells
    # them it is not the user's.
    if os.environ.get("HYDRA_FULL_ERROR") == "1" and os.environ.get(_SET_BY_CLI) != "1":
        return main()
    os.environ["HYDRA_FULL_ERROR"] = os.environ[_SET_BY_CLI] = "1"
    stderr, sys.stderr = sys.stderr, _WithoutJobLine(sys.stderr)
    try:
        return main()
    except Exception as e:
        if not is_user_error(e):
            raise
        print(f"localize: {one_line(e)}", file=stderr)
        sys.exit(EXIT_USER_ERROR)
    finally:
        sys.stderr = stderr
        os.environ.pop("HYDRA_FULL_ERROR", None)
        os.environ.pop(_SET_BY_CLI, None)


class _WithoutJobLine:
    """stderr without Hydra's ``Error executing job with overrides: [...]`` line: the error's own line
    follows, and the overrides may hold a secret passed on the command line."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if text.startswith("Error executing job with overrides:"):
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
