"""Two offline Japanese NER datasets for the transfer demo, from the embedded hironsan corpus.

    python experiments/transfer/make_offline_data.py [--out experiments/transfer/data]

Offline only Japanese has NER data, so the demo's two "domains" are two *disjoint halves* of the
hironsan corpus (seeded shuffle, no sentence in both) written in two units:

* ``ja_words.conll`` — MeCab/IPAdic words with IOB2 tags (the corpus's own unit);
* ``ja_chars.jsonl`` — span-JSON (text + character-offset entities), read character by character
  (``char_level``: what a model sees when no segmenter is installed at inference).

The off-diagonal cells therefore measure a segmentation-unit shift on unseen sentences — honest
as far as it goes, but *not* cross-lingual transfer; that needs the hub locales (see README).

``--heldout`` instead writes the *test split of the default training run* (hironsan, sizes
400/50/50, seed 42 — what ``python -m localize.train +locale=ja task=ner`` trains on) in both
units: ``ja_test_words.conll`` / ``ja_test_chars.jsonl``, same sentences in the same order, so an
already trained default run can be scored word- vs character-level without any leakage.
"""
from __future__ import annotations

import argparse
import json
import os
import random

from localize.data.ner_readers import load_ner, read_hironsan, split_examples


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


def write_pair(words: list[dict], chars: list[dict], out: str, words_name: str, chars_name: str) -> None:
    """``words`` as CoNLL (MeCab words), ``chars`` as span JSON (read character by character)."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, words_name), "w", encoding="utf-8") as f:
        for ex in words:
            f.write("".join(f"{w}\t{t}\n" for w, t in zip(ex["tokens"], ex["tags"])) + "\n")
    with open(os.path.join(out, chars_name), "w", encoding="utf-8") as f:
        for ex in chars:
            rec = {"id": ex["id"], "text": "".join(ex["tokens"]), "entities": entity_char_spans(ex["tokens"], ex["tags"])}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heldout", action="store_true",
                        help="write the default run's hironsan test split (400/50/50, seed 42) in both units")
    args = parser.parse_args()
    if args.heldout:
        # Exactly the datamodule's path: load_ner + split_examples with the default sizes and seed.
        test = split_examples(load_ner(source="hironsan"), (400, 50, 50), seed=42)["test"]
        test = [ex for ex in test if all(w.strip() for w in ex["tokens"])]
        write_pair(test, test, args.out, "ja_test_words.conll", "ja_test_chars.jsonl")
        print(f"wrote the default run's {len(test)} test sentences (word and char units) to {args.out}")
        return
    # CoNLL cannot hold a whitespace token (the corpus has a few U+3000 words): drop those sentences.
    examples = [ex for ex in read_hironsan() if all(w.strip() for w in ex["tokens"])]
    random.Random(args.seed).shuffle(examples)
    half = len(examples) // 2
    write_pair(examples[:half], examples[half:], args.out, "ja_words.conll", "ja_chars.jsonl")
    print(f"wrote {half} word-level and {len(examples) - half} char-level sentences to {args.out}")


if __name__ == "__main__":
    main()
