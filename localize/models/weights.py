"""Loading a run's trained state into a rebuilt LightningModule (the inverse of
``tracking.storage.save_trainable``): a peft adapter folder, ``trainable.safetensors``, or a
Lightning checkpoint — each read without executing code (safetensors, ``weights_only=True``)."""
from __future__ import annotations

import logging
import os
import pickle
import re
from typing import TYPE_CHECKING, Any

import torch

from localize.models.backbones import count_parameters, enable_prefix_cache_kwarg, resolve_path, same_weights

if TYPE_CHECKING:
    import pytorch_lightning as pl

log = logging.getLogger(__name__)


def corrupt(path: str, e: Exception) -> ValueError:
    fix = ("use another checkpoint of the run (checkpoints/best.ckpt or checkpoints/last.ckpt), or retrain"
           if str(path).endswith(".ckpt") else
           "retrain the run; localize.evaluate can still read its Lightning checkpoint: "
           "python -m localize.evaluate run=<run dir> ckpt_path=<run dir>/checkpoints/best.ckpt")
    return ValueError(f"{path} is corrupt or truncated ({type(e).__name__}: {_first_line(e)}). Fix: {fix}")


def _first_line(e: Exception) -> str:
    """The library's own message without its advice (torch suggests ``weights_only=False``, which
    would unpickle whatever the file holds)."""
    text = str(e).split("\n")[0].split("Re-running `torch.load`")[0].strip()
    return text[:200]


def refused(path: str, e: Exception, fix: str | None = None) -> ValueError:
    """The error for a weights file that pickles more than tensors (torch's ``weights_only=True``
    refused it): what it held, and a fix — not torch's advice to retry with ``weights_only=False``."""
    found = re.search(r"(?:unsupported|Unsupported global:) GLOBAL [\w.]+|Unsupported operand \S+", str(e))
    return ValueError(f"{path} holds pickled objects other than tensors and plain values "
                      f"({found[0] if found else 'not a tensor'}); it was refused, because unpickling them could run "
                      f"code (or the file is corrupt). " + (fix or "Use weights written by localize.train (<run dir>/model, "
                                          "<run dir>/checkpoints/best.ckpt or last.ckpt), or retrain"))


def check_crc(path: str) -> None:
    """Every member of a checkpoint's zip against the CRC-32 that ``torch.save`` recorded for it
    (torch's own reader does not check them). Members written without one (``torch.serialization.
    set_crc32_options(False)``: CRC 0) are skipped; a file that is not a zip is left to torch.

    Raises:
        ValueError: a member's bytes changed after it was written (``corrupt``: names the file and the fix).
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.CRC == 0 and info.file_size:
                    continue
                with archive.open(info) as member:  # raises BadZipFile at the end of a member whose CRC differs
                    while member.read(1 << 24):
                        pass
    except zipfile.BadZipFile as e:
        if not zipfile.is_zipfile(path):
            return
        raise corrupt(path, e) from e


def load_checkpoint(path: str, mmap: bool = False) -> dict[str, Any]:
    """``torch.load(weights_only=True)``: tensors and plain values only, with our messages.

    Args:
        path: a Lightning checkpoint (``.ckpt``).
        mmap: map the tensors instead of reading them (a cheap check of a whole checkpoint).

    Raises:
        ValueError: the file pickles anything else (refused before anything in it runs), or is
            corrupt.
    """
    check_crc(path)  # torch reads a flipped byte inside a tensor as a changed weight, silently
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        raise refused(path, e) from e
    except Exception as e:
        raise corrupt(path, e) from e


def read_peft_weights(model_dir: str) -> dict[str, torch.Tensor]:
    """An adapter folder's saved tensors (our message for a corrupt or missing file)."""
    from peft.utils import load_peft_weights

    path = os.path.join(model_dir, "adapter_model.safetensors")
    if not os.path.exists(path) and os.path.exists(os.path.join(model_dir, "adapter_model.bin")):
        path = os.path.join(model_dir, "adapter_model.bin")  # peft reads it with weights_only=True
    try:
        return load_peft_weights(model_dir, device="cpu")
    except pickle.UnpicklingError as e:
        raise refused(path, e) from e
    except Exception as e:  # SafetensorError, truncated file, missing weights file
        raise corrupt(path, e) from e


def attach_peft(module, model_dir: str, peft_config: Any, base: str) -> None:
    """Wrap ``module.model`` (the plain backbone) with the adapter saved in ``model_dir``."""
    import peft

    read_peft_weights(model_dir)  # a corrupt file gets our message, not a deep safetensors error
    saved_base = getattr(peft_config, "base_model_name_or_path", None)
    if saved_base and not (same_weights(saved_base, base) or os.path.basename(saved_base.rstrip("/")) ==
                           os.path.basename(resolve_path(base).rstrip("/"))):
        log.warning("adapter_config.json names base '%s', the run's config '%s'", saved_base, base)
    if peft_config.is_prompt_learning:
        enable_prefix_cache_kwarg(module.model)
    try:
        module.model = peft.PeftModel.from_pretrained(module.model, model_dir)
    except RuntimeError as e:  # size mismatch
        raise ValueError(f"the adapter in {model_dir} does not fit the backbone built from the run's config "
                         f"({str(e)[:300]}): run.json and model/ come from different runs; retrain") from e
    # peft's AdaLoRA adds its orthogonal regulariser to every loss in forward and reads trainable_adapter_name
    # for it, which it sets only on a trainable adapter: a reloaded run would crash on its test loss.
    tuner = module.model.base_model
    if isinstance(tuner, peft.AdaLoraModel) and not hasattr(tuner, "trainable_adapter_name"):
        tuner.trainable_adapter_name = module.model.active_adapter
    module.param_counts = count_parameters(module.model)
    module.strict_loading = False


def load_full_state(module, path: str, base: str) -> None:
    """Load ``trainable.safetensors`` (all weights, or the trainable part over the base weights)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(path, framework="pt") as f:
            saved_base = (f.metadata() or {}).get("base_model")
        state = load_file(path)
    except Exception as e:
        raise corrupt(path, e) from e
    if saved_base and not same_weights(saved_base, base):
        raise ValueError(f"{path} was trained on base model '{saved_base}' but the run's config says '{base}': "
                         f"run.json and model/ come from different runs")
    try:
        missing, unexpected = module.model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise ValueError(f"{path} does not fit the model built from the run's config ({str(e)[:300]}); retrain") from e
    params = dict(module.model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    lost = [k for k in missing if (k in trainable or module.strict_loading) and k in params]  # buffers are rebuilt
    if unexpected or lost:
        raise ValueError(f"{path} does not match the run's model: unexpected {unexpected[:3]}, missing {lost[:3]}; "
                         f"retrain the run")


def load_lightning_checkpoint(module, ckpt_path: str) -> None:
    """A Lightning checkpoint's state into the module (``weights_only=True``: no pickled code)."""
    if not os.path.isfile(ckpt_path):
        raise FileNotFoundError(f"checkpoint '{ckpt_path}' not found: pass ckpt_path=<run dir>/checkpoints/best.ckpt "
                                f"(or leave it out to load <run dir>/model)")
    ckpt = load_checkpoint(ckpt_path)
    try:
        state = ckpt["state_dict"]
    except Exception as e:
        raise corrupt(ckpt_path, e) from e
    module.on_load_checkpoint(ckpt)  # refuses a checkpoint of another base model
    try:
        module.load_state_dict(state, strict=module.strict_loading)
    except RuntimeError as e:
        raise ValueError(f"{ckpt_path} does not fit the run's model ({str(e)[:300]}): use the checkpoint of "
                         f"this run") from e


# --------------------------------------------------------------------------- one run's weights into another
def merge_adapter(module: pl.LightningModule) -> torch.nn.Module:
    """Merge ``module``'s peft adapter into its weights in place (its trained head replaces peft's wrapper
    too); returns the plain Transformers model. A module without an adapter is returned as it is."""
    if hasattr(module.model, "peft_config"):
        module.model = module.model.merge_and_unload()
    return module.model


def rebase_on(target: pl.LightningModule, source: pl.LightningModule) -> dict[str, Any]:
    """``source``'s model with its adapter merged becomes ``target``'s base: ``target``'s adapter comes off,
    the merged weights are copied in (a grown head by label), and the adapter goes on again over them."""
    merge_adapter(source)
    return target.rebase(lambda plain: copy_weights(source, target, into=plain))


def _label_rows(old: list[str] | None, new: list[str] | None, init_from: str) -> list[tuple[int, int]] | None:
    if not old or not new:
        return None
    lost = [x for x in old if x not in new]
    if lost:
        raise ValueError(f"init_from={init_from} knows labels {lost} that this run's label set lacks: its head "
                         f"cannot grow from that run. Fix: data.prior_labels=[{','.join(old)}] (the run's labels "
                         f"first), or init_from=null")
    return [(old.index(x), new.index(x)) for x in old]


@torch.no_grad()
def copy_weights(source: pl.LightningModule, target: pl.LightningModule, into: torch.nn.Module | None = None
                 ) -> dict[str, Any]:
    """Copy ``source``'s parameters into ``target``'s of the same name (or into ``into``, target's plain
    backbone while its adapter is off); rows of a head whose first dimension is the label count are copied
    by label. Returns what was copied.

    Raises:
        ValueError: a trainable parameter of ``target`` that ``source`` lacks or that no label mapping
            fits (another adapter, task or model).
    """
    init_from = getattr(getattr(source, "run_info", None), "run_dir", "the run")
    rows = _label_rows(source.label_names, target.label_names, init_from)
    src = dict(source.model.named_parameters())
    n_old = len(source.label_names or [])
    copied, grown = 0, []
    for name, p in (into if into is not None else target.model).named_parameters():
        q = src.get(name)
        if q is not None and q.shape == p.shape:
            p.copy_(q.to(p.dtype))
            copied += 1
        elif q is not None and rows is not None and q.shape[0] == n_old and q.shape[1:] == p.shape[1:]:
            for i, j in rows:
                p[j].copy_(q[i].to(p.dtype))
            grown.append(name)
            copied += 1
        elif p.requires_grad or into is not None:  # a merged base must cover every weight
            found = "missing" if q is None else f"of shape {tuple(q.shape)} vs {tuple(p.shape)}"
            raise ValueError(f"init_from={init_from}: parameter {name} is {found} there (another adapter, task or "
                             f"model?). Fix: train with that run's model=, task= and adapter=, or init_from=null")
    return {"tensors": copied, "grown": grown, "labels": list(target.label_names or [])}
