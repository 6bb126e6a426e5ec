"""Content digests of the data layer: tokenised-cache keys, example-set hashes, the CV test record."""
from __future__ import annotations

import functools
import hashlib
import json
import pathlib
from typing import Any, Sequence


def _plain(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except TypeError:
        return False


def _tokenizer_digest(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """The data package's source: a change in how examples are encoded invalidates the cache.
    Read once per process: it describes the code that was imported, not later edits on disk."""
    h = hashlib.sha256()
    for f in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()


def _example_sha1(ex: dict) -> str:
    return hashlib.sha1(json.dumps(ex, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _examples_sha1(examples: Sequence[dict]) -> str:
    """Order-free hash of a set of examples: two runs with the same hash hold the same examples."""
    h = hashlib.sha1()
    for d in sorted(_example_sha1(ex) for ex in examples):
        h.update(d.encode())
    return h.hexdigest()


def _tested(test: list[dict], pool_index: dict[int, int]) -> dict[str, Any]:
    """``test_index``: the pool position of each test example, in test-split order (a prediction's
    index in the test split maps to ``test_index[i]``); ``test_sha1``: :func:`_examples_sha1` of them."""
    index = [pool_index.get(id(ex)) for ex in test]
    return {"test_n": len(test), "test_index": index if None not in index else None,
            "test_sha1": _examples_sha1(test)}
