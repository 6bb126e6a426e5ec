"""Sentence embeddings from an encoder (the embedded multilingual e5 by default): mean-pooled last hidden
states, L2-normalised, so a dot product is the cosine similarity. In-context prompting uses them to pick
each input's nearest training examples as its demonstrations (``localize.data.in_context``)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from localize.hardware import cpu_bf16_features
from localize.models.backbones import load_tokenizer, resolve_path

# e5 was trained with these prefixes; symmetric tasks (text vs text) use "query: " on both sides.
E5_PREFIX = "query: "


@torch.no_grad()
def sentence_embeddings(texts: Sequence[str], model: str = "e5_small", prefix: str = E5_PREFIX,
                        batch_size: int = 32, max_length: int = 128) -> np.ndarray:
    """``(len(texts), hidden)`` unit vectors; ``model`` is an embedded name or a local/hub encoder."""
    from transformers import AutoModel

    tokenizer = load_tokenizer(model)
    try:  # BERT-style encoders: no pooler (mean pooling does not read it; it would load as "missing")
        encoder = AutoModel.from_pretrained(resolve_path(model), add_pooling_layer=False).eval()
    except TypeError:
        encoder = AutoModel.from_pretrained(resolve_path(model)).eval()
    fast = bool(cpu_bf16_features())  # bf16 matmuls where the CPU runs them natively (localize.hardware)
    out = []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths: less padding
    for start in range(0, len(order), batch_size):
        chunk = [prefix + texts[i] for i in order[start:start + batch_size]]
        enc = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            hidden = encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden.float() * mask).sum(1) / mask.sum(1).clamp(min=1)
        out.append(torch.nn.functional.normalize(pooled, dim=-1))
    emb = torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)
    result = np.empty_like(emb)
    result[order] = emb
    return result
