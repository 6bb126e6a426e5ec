"""Run the analysis notebook as Jupyter does: ``python -m localize.report.notebook [--log-dir logs]``.

``make notebook`` calls this (after installing the ``notebook`` extra). papermill executes
``notebooks/compare_methods.ipynb`` in a ``python3`` kernel of this interpreter, with the parameters
(the cell tagged ``parameters``: ``LOG_DIR``, ``METRIC``, ``REFERENCE``, ``WANDB_PROJECT``) injected, and
writes the executed copy and its HTML under ``<log dir>/report/notebook/``. The notebook test runs the
same function. A cell that raises leaves ``<name>.failed.ipynb`` (with the traceback in it), never a copy
that looks complete.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "compare_methods.ipynb"


def execute(log_dir: str, out_dir: str | None = None, notebook: str | os.PathLike = NOTEBOOK,
            parameters: dict[str, Any] | None = None, timeout: int = 900) -> dict[str, str]:
    """Execute ``notebook`` on ``log_dir``; returns ``{"notebook": executed .ipynb, "html": its HTML}``.

    Raises:
        FileNotFoundError: no such log dir (the message names how to make runs).
        RuntimeError: a cell raised (the message names the cell and the kept ``.failed.ipynb``).
    """
    import papermill
    from nbconvert import HTMLExporter

    if not os.path.isdir(log_dir):
        raise FileNotFoundError(f"--log-dir {log_dir}: no such folder. Fix: train runs first (make train) "
                                f"or pass the folder your runs are in (--log-dir <dir>)")
    out_dir = out_dir or os.path.join(log_dir, "report", "notebook")
    os.makedirs(out_dir, exist_ok=True)
    name = Path(notebook).stem
    done, failed = os.path.join(out_dir, f"{name}.ipynb"), os.path.join(out_dir, f"{name}.failed.ipynb")
    for stale in (done, failed):  # an earlier result must not pass for this one
        if os.path.exists(stale):
            os.remove(stale)
    params = {"LOG_DIR": os.path.abspath(log_dir), **(parameters or {})}
    try:
        # The kernel starts in the repo root (the notebook's own imports and relative paths hold there).
        papermill.execute_notebook(str(notebook), failed, parameters=params, kernel_name="python3",
                                   cwd=str(Path(notebook).resolve().parents[1]), execution_timeout=timeout,
                                   progress_bar=False, log_output=False)
    except papermill.PapermillExecutionError as e:
        raise RuntimeError(f"{name}: cell {e.exec_count} raised {e.ename}: {e.evalue} "
                           f"(the executed notebook, traceback included: {failed})") from None
    os.replace(failed, done)
    body, _ = HTMLExporter().from_filename(done)
    html = os.path.join(out_dir, f"{name}.html")
    from localize.tracking.atomic import atomic_file

    with atomic_file(html) as f:
        f.write(body)
    return {"notebook": done, "html": html}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localize.report.notebook", description=__doc__.split("\n")[0])
    parser.add_argument("--log-dir", default=os.environ.get("LOCALIZE_LOG_DIR", "logs"),
                        help="folder of runs, multiruns, evaluations and sequences (default logs)")
    parser.add_argument("--out", help="output folder (default <log dir>/report/notebook)")
    parser.add_argument("--metric", help="test metric, e.g. test/f1 (default: per task)")
    parser.add_argument("--reference", help="method the others are paired against (default full)")
    args = parser.parse_args(argv)
    extra = {k.upper(): v for k, v in (("metric", args.metric), ("reference", args.reference)) if v}
    try:
        paths = execute(args.log_dir, args.out, parameters=extra)
    except (FileNotFoundError, RuntimeError) as e:
        print(f"[localize.report.notebook] error: {e}", file=sys.stderr)
        return 1
    except ImportError as e:
        print(f"[localize.report.notebook] error: {e.name} is not installed. Fix: make notebook "
              f"(installs the notebook extra: pip install -e '.[notebook]')", file=sys.stderr)
        return 1
    print(f"[localize.report.notebook] wrote {paths['notebook']}\n[localize.report.notebook] wrote {paths['html']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
