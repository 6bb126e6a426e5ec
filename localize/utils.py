"""Small orchestration helpers shared by the entry points."""
from __future__ import annotations

import logging
import os
import re
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
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(cause)) if isinstance(cause, TypeError) else None
        if unknown and isinstance(node, DictConfig):
            raise _unknown_setting(node, unknown[1]) from None
        if isinstance(cause, (ValueError, OSError, TypeError, KeyError)) and not isinstance(cause, InstantiationException):
            raise cause from None
        raise


def _unknown_setting(node: DictConfig, name: str) -> ValueError:
    """``+data.batchsize=3`` reached a constructor that has no such argument: name it and the nearest key."""
    import difflib

    where = node._get_full_key(None) or "the config"
    keys = [str(k) for k in node.keys() if not str(k).startswith("_") and str(k) != name]
    near = difflib.get_close_matches(name, keys, n=1)
    fix = (f"did you mean {where}.{near[0]}? Drop +{where}.{name} and set {where}.{near[0]}=<value>" if near
           else f"drop +{where}.{name} (the settings of {where} are listed by python -m localize.train --cfg job)")
    return ValueError(f"{where}.{name} is not a setting of {node.get('_target_', where)}. Fix: {fix}")


def instantiate_dict(cfg: DictConfig | dict | None) -> list[Any]:
    """Instantiate every ``_target_`` node of a mapping (callbacks, loggers); None results dropped."""
    if not cfg:
        return []
    out = [build(node) for node in cfg.values() if node is not None and "_target_" in node]
    return [o for o in out if o is not None]


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """Plain, resolved, secret-free config for W&B and run records."""
    from localize.config import OVERRIDES_KEY
    from localize.tracking.record import redact

    config = OmegaConf.to_container(cfg, resolve=True)
    config.pop(OVERRIDES_KEY, None)  # recorded on their own, redacted (run.json "overrides")
    return redact(config)


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
    # transformers 5 checks a model's tensor-parallel plan on every load and lists (~1,000 characters)
    # the layers it would not shard; localize never runs transformers' tensor parallelism.
    logging.getLogger("transformers.distributed.tensor_parallel").setLevel(logging.ERROR)
    # transformers' "Loading weights" bar for a model already on disk (hub downloads keep their own bars).
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # Lightning's INFO lines (GPU/TPU available, a litlogger tip, checkpoint restored): the run's own
    # summary line says what matters (precision, metrics, run dir); its warnings still show.
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
