"""task=translation on a tiny random Gemma-3: loss masking, splits, end-to-end record, .po filling."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from conftest import FAST, compose_cfg
from localize.data.gettext_pairs import read_po, write_po
from localize.data.translation import fill_po, line_cores, reassemble
from localize.train import train
from localize.utils import build

FIXTURES = Path(__file__).parent / "fixtures" / "mt"
SMALL_PO = FIXTURES / "small.po"
# The tiny causal model replaces FAST's tiny BERT; 6 dev and 6 test sources from the 48 pairs.
MT = [o for o in FAST if not o.startswith("model=")] + [
    "+locale=ja", "task=translation", "model=tiny_causal", f"data.path={SMALL_PO}",
    "data.split_sizes=[null,6,6]", "module.generation.max_new_tokens=6", "logger=csv",
]


@pytest.fixture
def mt_cfg(tmp_path):
    def _make(extra: list[str] = ()):
        return compose_cfg(MT + list(extra), tmp_path / "run")
    return _make


def _predictor(cfg, module=None):
    """Raw text through the datamodule's encoding and the module's predict_step (what predict uses)."""
    from localize.runs import Predictor

    return Predictor(module if module is not None else instantiate(cfg.module), instantiate(cfg.data))


def _assert_scores_are_those_of_the_outputs(rec, stage):
    """The recorded chrF and exact match are those of the recorded outputs, recomputed here with
    sacrebleu itself (the samples hold the whole test split: 6 sentences <= module.n_samples)."""
    from sacrebleu.metrics import CHRF

    samples = rec["results"]["samples"][stage]
    assert len(samples) == rec["data"]["sizes"]["test"]
    hyps, refs = [s["hypothesis"] for s in samples], [s["reference"] for s in samples]
    assert rec["metrics"][f"{stage}/chrf"] == pytest.approx(CHRF().corpus_score(hyps, [refs]).score)
    exact = sum(h.strip() == r.strip() for h, r in zip(hyps, refs)) / len(hyps)
    assert rec["metrics"][f"{stage}/exact_match"] == pytest.approx(exact)


def _datamodule(cfg):
    dm = instantiate(cfg.data)
    dm.setup("fit")
    return dm


def test_loss_is_masked_to_target_and_eos(mt_cfg):
    dm = _datamodule(mt_cfg())
    tok = dm.tokenizer
    for ex in dm.encoded["train"].select(range(5)):
        n_prompt = len(ex["prompt_ids"])
        assert ex["input_ids"][:n_prompt] == ex["prompt_ids"]
        assert ex["labels"][:n_prompt] == [-100] * n_prompt  # no loss on the prompt
        target = ex["labels"][n_prompt:]
        assert target == ex["input_ids"][n_prompt:] and -100 not in target
        assert target[-1] == tok.sep_token_id  # EOS (MiniLM has none: SEP) is learned
        assert tok.decode(target[:-1]).replace(" ", "") == tok.decode(
            tok(ex["reference"], add_special_tokens=False)["input_ids"]).replace(" ", "")
    batch = next(iter(dm.train_dataloader()))
    assert bool(batch["attention_mask"][:, -1].all())  # left-padded: targets end every row
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()


def test_sliced_logits_loss_equals_full_loss(mt_cfg):
    cfg = mt_cfg(["adapter=lora"])
    dm = _datamodule(cfg)
    module = instantiate(cfg.module)
    module.eval()
    batch = next(iter(dm.train_dataloader()))
    sliced = module._loss(batch)
    module._slice_logits = False
    full = module._loss(batch)
    torch.testing.assert_close(sliced, full)


def _sources(split):
    return {ex["source"] for ex in split}


def test_no_source_in_two_splits(mt_cfg, tmp_path):
    # Same English source under several contexts and catalogs: all copies go to one split.
    pairs = read_po(SMALL_PO)
    dup = [dict(p, context=f"ctx{i}", target=p["target"] + "!") for i in range(3) for p in pairs[:20]]
    po = tmp_path / "dups.po"
    write_po(pairs + dup, po, lang="ja")
    dm = instantiate(mt_cfg([f"data.path={po}", "data.split_sizes=[0.6,0.2,0.2]"]).data)
    splits = {k: _sources(v) for k, v in dm.splits.items()}
    assert all(splits.values())
    assert not splits["train"] & splits["validation"]
    assert not splits["train"] & splits["test"]
    assert not splits["validation"] & splits["test"]
    assert sum(len(v) for v in dm.splits.values()) == len(pairs) + len(dup)


def test_system_catalogs_split_and_record_licences(mt_cfg):
    if not list(Path("/usr/share/locale/ja/LC_MESSAGES").glob("*.mo")):
        pytest.skip("no Japanese gettext catalogs installed")
    dm = instantiate(mt_cfg(["data.path=null", "data.split_sizes=[0.8,0.1,0.1]", "data.max_train_examples=50",
                                    "data.max_eval_examples=10"]).data)
    splits = {k: _sources(v) for k, v in dm.splits.items()}
    assert not (splits["train"] & splits["test"]) and not (splits["validation"] & splits["test"])
    assert dm.data_info["sizes"] == {"train": 50, "validation": 10, "test": 10}
    assert dm.data_info["catalogs"] and "licence" in dm.data_info["catalogs"][0]


def test_train_records_zeroshot_and_test_scores(mt_cfg, tmp_path):
    rec = train(mt_cfg(["adapter=lora"]))
    on_disk = json.loads((tmp_path / "run" / "run.json").read_text())
    metrics = on_disk["metrics"]
    for stage in ("zeroshot", "test"):
        assert {f"{stage}/{n}" for n in ("chrf", "bleu", "exact_match", "placeholder_preservation")} <= set(metrics)
        _assert_scores_are_those_of_the_outputs(on_disk, stage)
    assert "val/chrf" in metrics and metrics["val/chrf_best"] >= metrics["val/chrf"]
    samples = on_disk["results"]["samples"]
    assert len(samples["zeroshot"]) == len(samples["test"]) == 6  # same test set before and after
    assert [s["source"] for s in samples["zeroshot"]] == [s["source"] for s in samples["test"]]
    assert set(samples["test"][0]) == {"index", "source", "reference", "hypothesis"}
    assert on_disk["results"]["translation_scores"]["test"]["bleu_tokenize"] in ("ja-mecab", "char")
    assert (tmp_path / "run" / "model" / "adapter_config.json").exists()
    assert rec["metrics"]["test/chrf"] == metrics["test/chrf"]
    speed, max_new = on_disk["results"]["generation_speed"], on_disk["results"]["generation"]["max_new_tokens"]
    assert speed["sequences"] >= 12  # zero-shot and test passes over the 6 test strings, plus the dev passes
    assert 0 < speed["new_tokens"] <= speed["positions"] <= speed["sequences"] * max_new
    assert speed["new_tokens_per_s"] == pytest.approx(speed["new_tokens"] / speed["seconds"])


def test_zeroshot_generation_ignores_the_adapter(mt_cfg):
    cfg = mt_cfg(["adapter=lora"])
    dm = _datamodule(cfg)
    module = instantiate(cfg.module)
    module.eval()
    batch = next(iter(dm.val_dataloader()))
    before = module.generate_texts(batch["prompt_ids"], batch["prompt_mask"], base=True)
    with torch.no_grad():
        for name, p in module.model.named_parameters():
            if "lora_B" in name:
                p.add_(torch.randn_like(p))  # a trained adapter changes the outputs ...
    assert module.generate_texts(batch["prompt_ids"], batch["prompt_mask"]) != before
    assert module.generate_texts(batch["prompt_ids"], batch["prompt_mask"], base=True) == before  # ... not these


def test_prefix_tuning_fails_with_the_fix():
    # peft 0.21 injects prefixes as past_key_values; transformers 5 generate() passes `cache`.
    cfg = compose_cfg(MT + ["adapter=prefix"], "/tmp/unused")
    with pytest.raises(ValueError, match="Use adapter=lora"):
        build(cfg.module)


@pytest.mark.parametrize("adapter", ["full", "lora", "adalora"])
def test_adapters_train_on_causal_lm(mt_cfg, adapter):
    cfg = mt_cfg([f"adapter={adapter}"])
    dm = _datamodule(cfg)
    module = instantiate(cfg.module)
    module.train()
    loss = module._loss(next(iter(dm.train_dataloader())))
    loss.backward()
    grads = [p.grad for p in module.model.parameters() if p.requires_grad]
    assert torch.isfinite(loss) and any(g is not None and g.abs().sum() > 0 for g in grads)
    assert _predictor(cfg, module).predict_texts(["Open file"])[0]["source"] == "Open file"
    module._check_generation_sees_adapter()  # the positive control of the prefix-tuning check


def test_predict_texts_keeps_lines_and_edges(mt_cfg):
    texts = ["Open file\n", "  Usage: tool\n  -h  help\n", "Open file", "\n"]
    out = _predictor(mt_cfg()).predict_texts(texts, batch_size=2)
    assert [o["source"] for o in out] == texts
    assert out[0]["translation"].endswith("\n") and out[1]["translation"].startswith("  ")
    assert out[1]["translation"].count("\n") == 2 and out[3]["translation"] == "\n"
    assert out[0]["translation"].rstrip("\n") == out[2]["translation"]  # same line, same translation


def test_line_helpers_round_trip():
    texts = ["a b\n", "  c\n\nd  "]
    assert line_cores(texts) == ["a b", "c", "d"]
    assert reassemble(texts[1], {"c": "C", "d": "D"}) == "  C\n\nD  "


class _Upper:
    """Stand-in translator: deterministic, and it keeps placeholders."""

    def predict_texts(self, texts, batch_size=16):
        return [{"source": t, "translation": reassemble(t, {c: "訳:" + c for c in line_cores([t])})} for t in texts]


def test_fill_po_round_trip(tmp_path):
    out = tmp_path / "filled.po"
    stats = fill_po(FIXTURES / "todo.po", out, _Upper())
    assert stats == {"filled": 5, "empty": 0, "kept": 1, "placeholders_kept": 5}
    got = {(e["context"], e["source"]): e for e in read_po(out, keep_fuzzy=True)}
    assert got[(None, "Open file")]["target"] == "ファイルを開く"  # translated entry untouched
    assert "fuzzy" not in got[(None, "Open file")]["flags"]
    cannot = got[(None, "Cannot read %s")]
    assert cannot["target"] == "訳:Cannot read %s" and cannot["flags"] == ["fuzzy", "c-format"]
    assert got[(None, "Close all windows")]["target"] == "訳:Close all windows"  # fuzzy entry redone
    assert got[("menu", "Quit")]["target"] == "訳:Quit"
    assert got[(None, "%d file")]["targets"] == ["訳:%d file"]  # nplurals=1 kept from the header
    usage = got[(None, "Usage: tool [OPTION]\n  -h  show help\n")]["target"]
    assert usage == "訳:Usage: tool [OPTION]\n  訳:-h  show help\n"  # line by line, edges kept
    assert len(read_po(out, keep_fuzzy=True, keep_untranslated=True)) == 6
    header = out.read_text(encoding="utf-8").split("\n\n")[0]
    assert "Language: ja" in header and "Plural-Forms: nplurals=1; plural=0;" in header
    if shutil.which("msgfmt"):
        subprocess.run(["msgfmt", "--check", "-o", "/dev/null", str(out)], check=True, capture_output=True)
    fill_po(out, out, _Upper(), mark_fuzzy=False)  # fuzzy entries are redone; unflagged ones compile
    assert len(read_po(out)) == 6


def test_fill_po_with_the_model(mt_cfg, tmp_path):
    stats = fill_po(FIXTURES / "todo.po", tmp_path / "filled.po", _predictor(mt_cfg()))
    assert stats["filled"] + stats["empty"] == 5 and stats["kept"] == 1
    assert len(read_po(tmp_path / "filled.po", keep_fuzzy=True, keep_untranslated=True)) == 6


def test_encoder_model_is_refused(tmp_path):
    cfg = compose_cfg([o for o in MT if not o.startswith("model=")] + ["model=tiny_random"], tmp_path / "run")
    with pytest.raises(ValueError, match="model=gemma3_270m"):
        build(cfg.module)


def test_missing_target_language_names_the_fix(tmp_path):
    cfg = compose_cfg([o for o in MT if o != "+locale=ja"], tmp_path / "run")
    with pytest.raises(ValueError, match=r"\+locale=xx or set task.tgt_lang"):
        build(cfg.data)


def test_hub_corpus_is_read_per_split(mt_cfg, monkeypatch):
    import datasets

    calls = []

    def fake_load(hub_id, config, split):
        calls.append(split)
        # The test split shares 5 sentences with train.
        ids = {"train": range(0, 30), "validation": range(30, 40), "test": range(25, 30)}[split.split("[")[0]]
        rows = [{"translation": {"en": f"Open file number {i}", "ja": f"ファイル {i} を開く"}} for i in ids]
        return rows + [{"translation": {"en": "two\nlines", "ja": "二\n行"}}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    dm = instantiate(mt_cfg(["data.path=null", "data.gettext=null", "data.max_train_examples=2000",
                             "data.max_eval_examples=5"]).data)
    dm.splits
    assert calls == ["train[:4000]", "validation[:10]", "test[:10]"]
    assert dm.data_info["sizes"] == {"train": 25, "validation": 5, "test": 5}  # two-line pair dropped too
    splits = {k: _sources(v) for k, v in dm.splits.items()}
    assert not splits["train"] & splits["test"] and not splits["validation"] & splits["test"]
    assert dm.data_info["source"] == "hub:Helsinki-NLP/opus-100/en-ja"


# ---- encoder-decoder models (mT5 / opus-mt through the same task config) ------------------------
S2S = [o for o in MT if not o.startswith("model=")] + ["model=tiny_seq2seq"]


def test_seq2seq_encodes_source_as_inputs_and_target_as_labels(tmp_path):
    cfg = compose_cfg(S2S, tmp_path / "run")
    assert cfg.task.head == "seq2seq_lm" and cfg.adapter.name == "full_frozen_emb"
    dm = _datamodule(cfg)
    tok = dm.tokenizer
    for ex in dm.encoded["train"].select(range(3)):
        assert ex["input_ids"] == ex["prompt_ids"]  # the encoder reads the prompt alone
        assert tok.decode(ex["labels"], skip_special_tokens=True).replace(" ", "") == \
            tok.decode(tok(ex["reference"])["input_ids"], skip_special_tokens=True).replace(" ", "")
        assert ex["labels"][-1] == tok.sep_token_id  # ends with EOS: generation learns to stop
    batch = next(iter(dm.train_dataloader()))
    short = batch["attention_mask"].sum(1).argmin()
    assert batch["attention_mask"][short, 0] == 1  # right padding (labels shift right into the decoder)


@pytest.mark.parametrize("adapter", ["lora", "full"])
def test_seq2seq_trains_generates_and_fills_po(tmp_path, adapter):
    cfg = compose_cfg(S2S + [f"adapter={adapter}"], tmp_path / "run")
    rec = train(cfg)
    assert rec["model"] == "tiny_seq2seq"
    _assert_scores_are_those_of_the_outputs(rec, "test")
    assert "zeroshot/chrf" in rec["metrics"] and rec["metrics"]["val/chrf_best"] >= rec["metrics"]["val/chrf"]
    module = instantiate(cfg.module)
    assert module.encoder_decoder and not module._slice_logits
    out = _predictor(cfg, module).predict_texts(["Open file\n", "Open file"])
    assert out[0]["translation"].endswith("\n") and out[0]["source"] == "Open file\n"


def test_seq2seq_padding_does_not_change_the_loss(tmp_path):
    """Right padding + -100 labels: a padded batch scores each pair as it scores alone."""
    cfg = compose_cfg(S2S + ["adapter=full"], tmp_path / "run")
    dm = _datamodule(cfg)
    module = instantiate(cfg.module).eval()
    rows = [dm.encoded["train"][i] for i in range(4)]
    collate = dm._collator()
    with torch.no_grad():
        alone = [module._loss(collate([r])) for r in rows]
        out = module.model(**{k: v for k, v in collate(rows).items() if k in ("input_ids", "attention_mask", "labels")})
    per_token = torch.nn.functional.cross_entropy(out.logits.transpose(1, 2), collate(rows)["labels"],
                                                  ignore_index=-100, reduction="none")
    n = (collate(rows)["labels"] != -100).sum(1)
    torch.testing.assert_close(per_token.sum(1) / n, torch.stack(alone), rtol=1e-4, atol=1e-5)


def test_seq2seq_prefix_is_refused_with_the_fix(tmp_path):
    cfg = compose_cfg(S2S + ["adapter=prefix"], tmp_path / "run")
    with pytest.raises(ValueError, match="use adapter=lora"):
        build(cfg.module)


# ---- models that mark languages with tokens (NLLB / M2M100) ------------------------------------
@pytest.fixture
def tiny_nllb(tmp_path):
    """The nllb_distilled config on a tiny random M2M100 with a real NllbTokenizer over the fixture's
    characters (plus NLLB's 202 FLORES-200 language tokens, which the tokenizer adds itself)."""
    from transformers import NllbTokenizer

    pairs = read_po(SMALL_PO)
    chars = sorted({c for p in pairs for c in p["source"] + p["target"] if not c.isspace()})
    folder = tmp_path / "tok"
    tok = NllbTokenizer(vocab={t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "▁", *chars])}, merges=[])
    tok.save_pretrained(folder)
    arch = (f"{{model_type: m2m_100, vocab_size: {len(tok)}, d_model: 16, encoder_layers: 1, decoder_layers: 1, "
            "encoder_attention_heads: 2, decoder_attention_heads: 2, encoder_ffn_dim: 32, decoder_ffn_dim: 32, "
            "pad_token_id: 1, bos_token_id: 0, eos_token_id: 2, decoder_start_token_id: 2, "
            "encoder_layerdrop: 0, decoder_layerdrop: 0}")  # M2M100 defaults to 0.05: 1 layer could be skipped whole
    overrides = [o for o in MT if not o.startswith("model=")] + [
        "model=nllb_distilled", "model.name_or_path=tiny_random", f"model.tokenizer={folder}",
        f"++model.config_overrides={arch}"]
    return lambda extra=(): compose_cfg(overrides + list(extra), tmp_path / "run")


def test_language_tokens_mark_source_labels_and_generation(tiny_nllb):
    cfg = tiny_nllb()
    dm = _datamodule(cfg)
    tok = dm.tokenizer
    eng, jpn = tok.convert_tokens_to_ids("eng_Latn"), tok.convert_tokens_to_ids("jpn_Jpan")
    ex = dm.encoded["train"][0]
    assert ex["input_ids"][0] == eng and ex["labels"][0] == jpn and ex["labels"][-1] == tok.eos_token_id
    assert tok.decode(ex["labels"], skip_special_tokens=True) == ex["reference"]
    module = instantiate(cfg.module).eval()
    assert module.generation["forced_bos_token_id"] == jpn
    batch = dm._collator()([dm.encoded["validation"][i] for i in range(2)])
    out = module.model.generate(input_ids=batch["prompt_ids"], attention_mask=batch["prompt_mask"], **module.generation)
    assert (out[:, 0] == 2).all() and (out[:, 1] == jpn).all()  # decoder start (EOS), then the target code
    assert all("jpn_Jpan" not in t for t in module.generate_texts(batch["prompt_ids"], batch["prompt_mask"]))


def test_language_token_model_trains_and_fills_po(tiny_nllb, tmp_path):
    cfg = tiny_nllb(["adapter=lora"])
    rec = train(cfg)
    module = instantiate(cfg.module)
    assert rec["model"] == "nllb_distilled"
    _assert_scores_are_those_of_the_outputs(rec, "test")
    assert rec["results"]["generation"]["forced_bos_token_id"] == module.tokenizer.convert_tokens_to_ids("jpn_Jpan")
    out = tmp_path / "filled.po"
    fill_po(SMALL_PO, out, _predictor(cfg, module))
    assert len(read_po(out)) == len(read_po(SMALL_PO))


def test_locale_without_a_language_token_names_the_fix(tiny_nllb):
    from localize.data.translation import language_token_id, language_tokens

    assert language_tokens(None, "ja") == {}
    codes = {"en": "eng_Latn", "ja": "jpn_Jpan"}
    assert language_tokens(codes, "ja") == {"src_lang": "eng_Latn", "tgt_lang": "jpn_Jpan"}
    assert language_tokens(codes, "ja", reverse=True) == {"src_lang": "jpn_Jpan", "tgt_lang": "eng_Latn"}  # task.reverse
    with pytest.raises(ValueError, match=r"no language token for locale 'xx'.*\+model\.translation\.lang_codes\.xx="):
        language_tokens({"en": "eng_Latn", "ja": "jpn_Jpan"}, "xx")
    tok = _datamodule(tiny_nllb()).tokenizer
    with pytest.raises(ValueError, match="has no token 'jpn_Japn'"):
        language_token_id(tok, "jpn_Japn")


def test_head_warmup_on_a_model_without_a_head_names_the_fix_and_the_fix_trains(mt_cfg):
    with pytest.raises(ValueError, match=r"no trainable task head.*Fix: module.head_warmup_ratio=0$"):
        train(mt_cfg(["adapter=lora", "module.head_warmup_ratio=0.5"]))
    record = train(mt_cfg(["adapter=lora", "module.head_warmup_ratio=0"]))
    assert record["status"] in ("finished", "degenerate")
