"""Small orchestration helpers shared by the entry points."""
from __future__ import annotations

import logging
import os
import warnings
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def build(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that surfaces our own error (with its fix), not Hydra's wrapper."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, (ValueError, OSError, TypeError, KeyError)) and not isinstance(cause, InstantiationException):
            raise cause from None
        raise


def instantiate_dict(cfg: DictConfig | dict | None) -> list[Any]:
    """Instantiate every ``_target_`` node of a mapping (callbacks, loggers); None results dropped."""
    if not cfg:
        return []
    out = [build(node) for node in cfg.values() if node is not None and "_target_" in node]
    return [o for o in out if o is not None]


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """Plain, resolved, secret-free config for W&B and run records."""
    from localize.tracking.record import redact

    return redact(OmegaConf.to_container(cfg, resolve=True))


def check_writable(path: str) -> None:
    """Fail before training (not after an hour) when the output dir can't be written."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-probe")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise PermissionError(
            f"output dir '{path}' is not writable ({e.strerror}): set paths.log_dir=<writable dir> "
            f"or LOCALIZE_LOG_DIR"
        ) from e


def quiet_libraries() -> None:
    """Silence known-harmless warnings so real ones stay visible."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for pattern in (".*does not have many workers.*", ".*number of training batches.*",
                    ".*LeafSpec.*", ".*Checkpoint directory.*exists and is not empty.*"):
        warnings.filterwarnings("ignore", message=pattern)
    logging.getLogger("transformers.modeling_utils").setLevel(logging.ERROR)
