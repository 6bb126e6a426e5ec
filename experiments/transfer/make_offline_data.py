"""Two offline Japanese NER datasets for the transfer demo, from the embedded hironsan corpus.

    python experiments/transfer/make_offline_data.py [--out experiments/transfer/data]

Offline only Japanese has NER data, so the demo's two "domains" are two *disjoint halves* of the
hironsan corpus (seeded shuffle, no sentence in both) written in two units:

* ``ja_words.conll`` — MeCab/IPAdic words with IOB2 tags (the corpus's own unit);
* ``ja_chars.jsonl`` — span-JSON (text + character-offset entities), read character by character
  (``char_level``: what a model sees when no segmenter is installed at inference).

The off-diagonal cells therefore measure a segmentation-unit shift on unseen sentences — honest
as far as it goes, but *not* cross-lingual transfer; that needs the hub locales (see README).
"""
from __future__ import annotations

import argparse
import json
import os
import random

from localize.data.ner_readers import read_hironsan


def entity_char_spans(words: list[str], tags: list[str]) -> list[dict]:
    """IOB2 word tags -> ``{"start", "end", "label"}`` character spans of ``"".join(words)``."""
    spans, pos, open_span = [], 0, None
    for w, t in zip(words, tags):
        if open_span and (t == "O" or t.startswith("B-") or t[2:] != open_span["label"]):
            spans.append(open_span)
            open_span = None
        if t != "O":
            if open_span is None:
                open_span = {"start": pos, "end": pos + len(w), "label": t[2:]}
            else:
                open_span["end"] = pos + len(w)
        pos += len(w)
    if open_span:
        spans.append(open_span)
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "data"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # CoNLL cannot hold a whitespace token (the corpus has a few U+3000 words): drop those sentences.
    examples = [ex for ex in read_hironsan() if all(w.strip() for w in ex["tokens"])]
    random.Random(args.seed).shuffle(examples)
    half = len(examples) // 2
    words, chars = examples[:half], examples[half:]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "ja_words.conll"), "w", encoding="utf-8") as f:
        for ex in words:
            f.write("".join(f"{w}\t{t}\n" for w, t in zip(ex["tokens"], ex["tags"])) + "\n")
    with open(os.path.join(args.out, "ja_chars.jsonl"), "w", encoding="utf-8") as f:
        for ex in chars:
            rec = {"id": ex["id"], "text": "".join(ex["tokens"]), "entities": entity_char_spans(ex["tokens"], ex["tags"])}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"wrote {len(words)} word-level and {len(chars)} char-level sentences to {args.out}")


if __name__ == "__main__":
    main()
