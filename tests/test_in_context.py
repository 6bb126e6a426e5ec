"""In-context classification (adapter=icl): label words scored by a tiny causal LM, checked against
scoring them by hand; demonstrations, calibration, the record, and the errors with fixes that work."""
from __future__ import annotations

import csv
import json
import os
import re

import pytest
import torch

from conftest import compose_cfg
from localize.data.errors import DataError
from localize.utils import build

LABELS = {"pos": "good", "neg": "bad", "neu": "okay"}  # one MiniLM token each
TEXTS = {"pos": ["a lovely day in the park", "great food and kind staff", "the best film this year",
                 "happy news for the town", "a wonderful warm welcome"],
         "neg": ["the train was late again", "a terrible cold room", "rude staff and bad food",
                 "the worst film this year", "sad news for the town"],
         "neu": ["the shop opens at nine", "the meeting is on monday", "a report on the budget",
                 "the bus stops here", "the film is two hours long"]}


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for label, texts in TEXTS.items():
            for i, text in enumerate(texts * 2):  # 30 rows: numbered copies keep them distinct
                w.writerow([f"{text} {i}", label])
    return path


def _cfg(corpus, tmp_path, *extra: str, words: dict[str, str] | None = LABELS):
    verbalizers = ["data.verbalizers={" + ",".join(f"{k}:'{v}'" for k, v in words.items()) + "}"] if words else []
    return compose_cfg(["model=tiny_causal", "trainer=cpu", "logger=none", "task=classification", "adapter=icl",
                        f"data.path={corpus}", "data.split_sizes={train:0.6,validation:0.2,test:0.2}",
                        *verbalizers, "trainer.precision=32-true", *extra], tmp_path / "run")


def _built(cfg):
    dm = build(cfg.data)
    dm.setup("test")
    module = build(cfg.module, **dm.module_kwargs()).eval()
    batch = dm._collator()([dm.encoded["test"][i] for i in range(4)])
    return dm, module, batch


def _by_hand(module, prompt_ids: list[int], word: list[int]) -> float:
    """log p(word | prompt): one unpadded forward, the word's tokens read off position by position."""
    ids = torch.tensor([prompt_ids + word])
    with torch.no_grad():
        logp = module.model(input_ids=ids).logits[0].float().log_softmax(-1)
    return float(sum(logp[len(prompt_ids) - 1 + t, tok] for t, tok in enumerate(word)))


@pytest.mark.parametrize("words", [LABELS, {"pos": "very good", "neg": "bad", "neu": "so so so"}])
def test_k0_label_scores_are_the_verbalizers_scored_by_hand(corpus, tmp_path, words):
    """Zero-shot, one-token words (one forward per prompt) and words of 1-3 tokens (one per label): the
    padded batch gives each prompt's log-likelihoods exactly as an unpadded forward does."""
    cfg = _cfg(corpus, tmp_path, "adapter.k=0", words=words)
    dm, module, batch = _built(cfg)
    scores = module.label_log_likelihoods(batch["input_ids"], batch["attention_mask"])
    lengths = {len(v) for v in module.verbalizer_ids}
    assert (lengths == {1}) == (words is LABELS)
    for i in range(4):
        prompt = batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist()
        assert prompt == dm.encoded["test"][i]["input_ids"]
        hand = [_by_hand(module, prompt, w) for w in module.verbalizer_ids]
        assert scores[i].tolist() == pytest.approx(hand, abs=1e-4)
    assert len({len(r) for r in dm.encoded["test"]["input_ids"][:4]}) > 1  # the batch really was padded


def test_calibration_divides_out_the_content_free_label_distribution(corpus, tmp_path):
    dm, module, batch = _built(_cfg(corpus, tmp_path, "adapter.k=3", "adapter.calibrate=true"))
    plain = module.label_log_likelihoods(batch["input_ids"], batch["attention_mask"]).log_softmax(-1)
    cf = torch.tensor(dm.encoded["test"][0]["cf_input_ids"])[None]
    content_free = module.label_log_likelihoods(cf, torch.ones_like(cf)).log_softmax(-1)
    expected = (plain - content_free).log_softmax(-1)  # one shared draw: one content-free prompt
    assert torch.allclose(module.label_scores(batch), expected, atol=1e-5)
    assert not torch.allclose(expected, plain, atol=1e-3)


def test_random_demonstrations_are_one_seeded_balanced_draw_shown_before_every_input(corpus, tmp_path):
    dm, _, _ = _built(_cfg(corpus, tmp_path, "adapter.k=3"))
    train = dm.splits["train"]
    demos = dm.demonstrations(dm.splits["test"][0])
    assert sorted(train[j]["label"] for j in demos) == ["neg", "neu", "pos"]  # one per label
    assert dm.demonstrations(dm.splits["test"][1]) == demos
    prompt = dm.prompt("what a day", demos)
    shown = [train[j]["text"] for j in demos]
    assert [prompt.index(t) for t in shown] == sorted(prompt.index(t) for t in shown)
    assert prompt.endswith("Text: what a day\nLabel:") and prompt.count("\nLabel: ") == 3
    assert dm.data_info["in_context"]["demonstrations"] == [str(train[j]["id"]) for j in demos]
    again, _, _ = _built(_cfg(corpus, tmp_path / "again", "adapter.k=3"))
    assert again.demonstrations(again.splits["test"][0]) == demos  # seeded


def test_nearest_demonstrations_put_the_most_similar_training_text_last(corpus, tmp_path, e5_path):
    dm, _, _ = _built(_cfg(corpus, tmp_path, "adapter.k=2", "adapter.selection=nearest"))
    train = dm.splits["train"]
    target = next(j for j, ex in enumerate(train) if ex["label"] == "neg")
    picked, = dm._closest([train[target]["text"]])
    assert len(picked) == 2 and picked[-1] == target


def test_a_run_trains_nothing_scores_dev_and_test_and_records_the_prompt(corpus, tmp_path):
    from localize.runs import load_predictor
    from localize.train import train

    cfg = _cfg(corpus, tmp_path, "adapter.k=2")
    record = train(cfg)
    assert record["params"]["trainable"] == 0 and record["status"] in ("finished", "degenerate")
    assert {"val/f1_macro", "test/f1_macro", "test/accuracy"} <= set(record["metrics"])
    assert len(record["data"]["in_context"]["demonstrations"]) == 2
    assert record["data"]["in_context"]["verbalizers"] == LABELS
    run_dir = cfg.paths.output_dir
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "test_predictions.jsonl"))]
    assert len(rows) == 6
    out = load_predictor(run_dir).predict_texts(["a lovely warm park"])
    assert set(out[0]["probabilities"]) == set(LABELS) and sum(out[0]["probabilities"].values()) == pytest.approx(1)


def test_bad_settings_name_the_key_and_the_fix_works(corpus, tmp_path):
    with pytest.raises(ValueError, match=r"data.template=.*must hold \{text\} and end with \{label\}.*Fix: data.template="):
        build(_cfg(corpus, tmp_path, "data.template='{label}: {text}'").data)
    build(_cfg(corpus, tmp_path, "data.template='Review: {text} Verdict: {label}'").data)  # the fix's form

    cfg = _cfg(corpus, tmp_path, words={"pos": "good", "neg": "bad"})
    dm = build(cfg.data)
    with pytest.raises(DataError, match=r"data.verbalizers has no word for labels \['neu'\]. Fix: (data.verbalizers=\S+)") as e:
        dm.module_kwargs()
    fix = e.value.args[0].split("Fix: ")[1]
    assert len(build(_cfg(corpus, tmp_path, fix, words=None).data).module_kwargs()["verbalizer_ids"]) == 3

    long = _cfg(corpus, tmp_path, "adapter.k=6", "data.max_length=60")
    with pytest.raises(DataError, match=r"prompts are longer than 60 tokens.*Fix: (data.max_length=\d+) or "
                                        r"(adapter.k=\d+) \(fewer demonstrations\)") as e:
        build(long.data).setup("test")
    for fix in re.search(r"Fix: (data.max_length=\d+) or (adapter.k=\d+)", e.value.args[0]).groups():
        build(_cfg(corpus, tmp_path, "adapter.k=6", "data.max_length=60", fix).data).setup("test")


def test_an_encoder_without_a_causal_lm_head_is_refused_with_the_model_to_use(corpus, tmp_path):
    cfg = _cfg(corpus, tmp_path, "model=tiny_random")
    dm = build(cfg.data)
    with pytest.raises(ValueError, match="has no causal_lm head.*Fix: model=gemma3_270m"):
        build(cfg.module, **dm.module_kwargs())


def test_translation_prompts_show_k_example_pairs_and_nothing_trains(tmp_path):
    from localize.train import train

    po = os.path.join(os.path.dirname(__file__), "fixtures", "mt", "small.po")
    base = ["+locale=ja", "task=translation", "model=tiny_causal", "adapter=icl", "trainer=cpu", "logger=none",
            f"data.path={po}", "data.max_eval_examples=4", "module.generation.max_new_tokens=4"]
    cfg = compose_cfg([*base, "adapter.k=2"], tmp_path / "run")
    record = train(cfg)
    assert record["params"]["trainable"] == 0 and "test/chrf" in record["metrics"] and "val/chrf" in record["metrics"]
    shown = record["data"]["in_context"]["demonstrations"]
    dm = build(cfg.data)
    pairs = {p["id"]: p for p in dm.splits["train"]}
    prompt = dm._prompt("Open the file")
    assert len(shown) == 2 and all(pairs[i]["source"] in prompt and pairs[i]["target"] in prompt for i in shown)
    assert prompt.endswith("English: Open the file\nJapanese:")

    with pytest.raises(DataError, match=r"Fix: (data.max_length=\d+) or adapter.k=1") as e:
        build(compose_cfg([*base, "adapter.k=2", "data.max_length=20"], tmp_path / "short").data)._prompt("Open the file")
    fix = re.search(r"Fix: (data.max_length=\d+)", e.value.args[0]).group(1)
    build(compose_cfg([*base, "adapter.k=2", fix], tmp_path / "fixed").data)._prompt("Open the file")


def test_a_task_without_a_prompt_recipe_is_refused_and_the_fix_works():
    from localize.validate import check_config

    with pytest.raises(ValueError, match=r"adapter=icl works for task=sentiment\|classification\|translation, not "
                                         r"task=ner. Fix: task=sentiment, or adapter=lora for task=ner"):
        check_config(compose_cfg(["+locale=ja", "task=ner", "adapter=icl"], "/tmp/x"))
    check_config(compose_cfg(["+locale=ja", "task=sentiment", "adapter=icl"], "/tmp/x"))
    check_config(compose_cfg(["+locale=ja", "task=ner", "adapter=lora"], "/tmp/x"))


def test_steps_on_a_frozen_model_are_refused_and_the_fix_works():
    from localize.validate import check_config

    base = ["+locale=ja", "task=translation", "adapter=icl", "model=tiny_causal"]
    with pytest.raises(ValueError, match=r"adapter=icl trains no parameter \(module.frozen=true\), but "
                                         r"trainer.max_steps=2 asks for optimizer steps. Fix: trainer.max_steps=0"):
        check_config(compose_cfg([*base, "trainer.max_steps=2"], "/tmp/x"))
    check_config(compose_cfg([*base, "trainer.max_steps=0"], "/tmp/x"))


@pytest.mark.parametrize("words", [LABELS, {"pos": "very good", "neg": "bad", "neu": "so so so"}])
def test_the_shared_demonstrations_run_once_and_score_as_without_the_cache(corpus, tmp_path, words):
    """The tiny model's sliding window (32 tokens) is shorter than the demonstrations: the cached prefix
    must give the same scores as running every prompt whole."""
    dm, module, batch = _built(_cfg(corpus, tmp_path, "adapter.k=4", words=words))
    n = int(batch["prefix_length"][0])
    assert n > 32 and (batch["prefix_length"] == n).all()
    assert dm.tokenizer.decode(batch["input_ids"][0][:n]).lower().count("label :") == 4  # MiniLM lower-cases
    cached = module.label_log_likelihoods(batch["input_ids"], batch["attention_mask"], batch["prefix_length"])
    assert module._prefix is not None and len(module._prefix[0]) == n
    whole = module.label_log_likelihoods(batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(cached, whole, atol=1e-4), (cached - whole).abs().max()
