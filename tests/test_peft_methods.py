"""The adapter axis beyond LoRA: prompt tuning, P-tuning, (IA)^3, DoRA and the rsLoRA / PiSSA options
of LoRA, on token and sequence classification (tiny BERT) and translation (tiny Gemma-3 / T5)."""
from __future__ import annotations

import math

import peft
import pytest
import torch
from hydra.utils import instantiate

from conftest import FAST, compose_cfg
from localize.models.decoding import argmax_tags
from localize.models.token_cls import predict_word_tags
from localize.models.weights import attach_peft
from localize.tracking.storage import save_trainable
from localize.utils import build
from test_adapters import ADAPTERS, _steps

NEW = ["prompt_tuning", "ptuning", "ia3", "dora", "rslora", "pissa", "osf"]
MT = [o for o in FAST if not o.startswith("model=")] + [
    "+locale=ja", "task=translation", "data.path=tests/fixtures/mt/small.po", "data.split_sizes=[null,6,6]",
    "module.generation.max_new_tokens=6"]
INPUTS = ("input_ids", "attention_mask", "labels")


def _cfg(task: str, adapter: str, extra: list[str] = ()):
    locale = "+locale=ja" if task == "ner" else "+locale=zh"
    return compose_cfg([locale, f"task={task}", "model=tiny_random", *ADAPTERS[adapter][0], "data.batch_size=4",
                        "data.max_train_examples=8", *extra], "/tmp/x")


@pytest.fixture(scope="module")
def datamodules():
    """One tiny datamodule per task (the adapter does not change the data)."""
    cache = {}

    def _get(task):
        if task not in cache:
            cache[task] = instantiate(_cfg(task, "lora").data)
            cache[task].setup("fit")
        return cache[task]

    return _get


@pytest.mark.parametrize("task", ["ner", "sentiment"])
@pytest.mark.parametrize("adapter", NEW)
def test_saved_adapter_reloads_to_the_same_logits(task, adapter, datamodules, tmp_path):
    """Train a few steps, store the adapter (what localize.train stores), rebuild the plain backbone
    from the same seed and attach it the way localize.runs.load_run does: same logits."""
    cfg, dm = _cfg(task, adapter), datamodules(task)
    torch.manual_seed(0)
    module = instantiate(cfg.module, **dm.module_kwargs())
    batches = list(dm.train_dataloader())
    _steps(module, batches, n=2)
    save_trainable(module, str(tmp_path / "model"))
    torch.manual_seed(0)  # tiny_random: the seed draws the backbone
    reloaded = instantiate(cfg.module, **dm.module_kwargs(), adapter=None)
    attach_peft(reloaded, str(tmp_path / "model"), peft.PeftConfig.from_pretrained(str(tmp_path / "model")),
                str(cfg.model.name_or_path))
    batch = {k: batches[-1][k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        want, got = module.eval()(**batch).logits, reloaded.eval()(**batch).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("adapter", ["prompt_tuning", "ptuning"])
def test_virtual_tokens_are_cut_from_token_logits(adapter, datamodules):
    """Prompt tuning / P-tuning put num_virtual_tokens embeddings in front of the input: the logits
    kept are those of the real tokens (a manual forward over [prompt; input] shows which), the loss
    is the cross-entropy of exactly those, and word tags read the right positions."""
    dm = datamodules("ner")
    torch.manual_seed(0)
    module = instantiate(_cfg("ner", adapter).module, **dm.module_kwargs()).eval()
    batch = next(iter(dm.val_dataloader()))
    ids, mask = batch["input_ids"], batch["attention_mask"]
    model, n_virtual = module.model, module.model.active_peft_config.num_virtual_tokens
    with torch.no_grad():
        out = module(**{k: batch[k] for k in INPUTS})
        prompts = model.get_prompt(batch_size=ids.shape[0])
        full = model.base_model(inputs_embeds=torch.cat([prompts, model.word_embeddings(ids)], 1),
                                attention_mask=torch.cat([torch.ones(ids.shape[0], n_virtual), mask], 1)).logits
        tags = predict_word_tags(model, batch, module.b_to_i)
    assert full.shape[1] == ids.shape[1] + n_virtual and out.logits.shape[:2] == ids.shape
    torch.testing.assert_close(out.logits, full[:, n_virtual:])
    loss = torch.nn.functional.cross_entropy(full[:, n_virtual:].transpose(1, 2), batch["labels"])
    torch.testing.assert_close(out.loss, loss)
    torch.testing.assert_close(tags, argmax_tags(full[:, n_virtual:], batch["word_index"], module.b_to_i, None))


@pytest.mark.parametrize("adapter", ["prompt_tuning", "ptuning", "ia3", "dora", "osf"])
def test_adapter_trains_a_translation_step_on_a_causal_lm(adapter):
    cfg = compose_cfg(MT + ["model=tiny_causal", f"adapter={adapter}"], "/tmp/x")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    module = build(cfg.module).train()  # prompt learning: the generation check runs here
    loss = module._loss(next(iter(dm.train_dataloader())))
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.model.parameters() if p.requires_grad)
    module._check_generation_sees_adapter()  # generate() scores the next token like the training forward


@pytest.mark.parametrize("adapter", ["prompt_tuning", "ptuning"])
def test_prompt_learning_on_an_encoder_decoder_is_refused_and_the_fix_builds(adapter):
    with pytest.raises(ValueError, match="use adapter=lora") as refused:
        build(compose_cfg(MT + ["model=tiny_seq2seq", f"adapter={adapter}"], "/tmp/x").module)
    assert "\n" not in str(refused.value)
    fixed = build(compose_cfg(MT + ["model=tiny_seq2seq", "adapter=lora"], "/tmp/x").module)
    assert fixed.param_counts["trainable"] < fixed.param_counts["total"]


def _lora_layer(module):
    return module.model.base_model.model.bert.encoder.layer[0].attention.self.query


def test_rslora_option_reaches_peft():
    plain, rs = (instantiate(_cfg("ner", name).module, label_names=["O", "B-X", "I-X"]) for name in ("lora", "rslora"))
    r, alpha = plain.model.peft_config["default"].r, plain.model.peft_config["default"].lora_alpha
    assert _lora_layer(plain).scaling["default"] == pytest.approx(alpha / r)
    assert _lora_layer(rs).scaling["default"] == pytest.approx(alpha / math.sqrt(r))


def test_pissa_starts_from_the_base_model_with_a_residual_base():
    labels = {"label_names": ["O", "B-X", "I-X"]}
    cfg = _cfg("ner", "pissa")
    torch.manual_seed(0)
    base = instantiate(cfg.module, adapter=None, **labels).eval()
    torch.manual_seed(0)
    pissa = instantiate(cfg.module, **labels).eval()
    layer = _lora_layer(pissa)
    original = base.model.bert.encoder.layer[0].attention.self.query.weight
    assert not torch.allclose(layer.base_layer.weight, original, atol=1e-3)  # the top-r part moved to A, B
    delta = layer.lora_B["default"].weight @ layer.lora_A["default"].weight * layer.scaling["default"]
    torch.testing.assert_close(layer.base_layer.weight + delta, original, rtol=1e-4, atol=1e-5)
    ids = torch.tensor([[101, 2000, 3000, 102]])
    with torch.no_grad():
        torch.testing.assert_close(pissa(input_ids=ids).logits, base(input_ids=ids).logits, rtol=1e-4, atol=1e-4)


def test_prompt_tuning_text_init_reads_the_models_tokenizer_offline():
    """TEXT init: the virtual tokens start as the word embeddings of the init text, tokenized with
    the model config's tokenizer (minilm for tiny_random, an embedded name resolved offline)."""
    from localize.models.backbones import load_tokenizer

    cfg = _cfg("ner", "prompt_tuning")
    module = instantiate(cfg.module, label_names=["O", "B-X", "I-X"])
    config = module.model.peft_config["default"]
    ids = load_tokenizer(cfg.model.tokenizer)(config.prompt_tuning_init_text)["input_ids"]
    ids = (ids * math.ceil(config.num_virtual_tokens / len(ids)))[: config.num_virtual_tokens]
    words = module.model.word_embeddings.weight[torch.tensor(ids)]
    torch.testing.assert_close(module.model.prompt_encoder["default"].embedding.weight, words)
    random = instantiate(_cfg("ner", "prompt_tuning", ["adapter.peft.prompt_tuning_init=RANDOM"]).module,
                         label_names=["O", "B-X", "I-X"])
    assert not torch.allclose(random.model.prompt_encoder["default"].embedding.weight, words)


@pytest.mark.parametrize("model, arch, size", [
    ("tiny_random", {"model_type": "bert"}, {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                             "intermediate_size": 32}),
    ("mdeberta_base", {"model_type": "deberta-v2"}, {"hidden_size": 16, "num_hidden_layers": 1,
                                                     "num_attention_heads": 2, "intermediate_size": 32}),
    ("tiny_causal", {"model_type": "gemma3_text"}, {"hidden_size": 16, "num_hidden_layers": 1, "head_dim": 8,
                                                    "num_attention_heads": 2, "num_key_value_heads": 1,
                                                    "intermediate_size": 32, "layer_types": ["full_attention"]}),
    ("mt5_small", {"model_type": "mt5"}, {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2}),
    ("opus_mt", {"model_type": "marian"}, {"d_model": 16, "encoder_layers": 1, "decoder_layers": 1,
                                           "encoder_attention_heads": 2, "decoder_attention_heads": 2,
                                           "encoder_ffn_dim": 32, "decoder_ffn_dim": 32, "pad_token_id": 1,
                                           "decoder_start_token_id": 1, "eos_token_id": 0}),
])
def test_ia3_targets_keys_values_and_the_ffn_output(model, arch, size):
    """model.ia3_* name each architecture's keys, values and FFN output linear (the feedforward one,
    scaled at its input) and nothing else: a tiny random copy of the architecture shows which."""
    from transformers import AutoConfig, AutoModel

    cfg = compose_cfg(["+locale=ja", "task=ner", f"model={model}"], "/tmp/x").model
    tiny = AutoModel.from_config(AutoConfig.for_model(**arch, vocab_size=64, **size))
    wrapped = peft.get_peft_model(tiny, peft.IA3Config(target_modules=cfg.ia3_target_modules,
                                                       feedforward_modules=cfg.ia3_feedforward_modules))
    layers = {n: m for n, m in wrapped.named_modules() if isinstance(m, peft.tuners.ia3.IA3Layer)}
    leaves = {n.rsplit(".", 1)[-1] for n in layers}
    feedforward = {n.rsplit(".", 1)[-1] for n, m in layers.items() if m.is_feedforward}
    expected = {"bert": ({"key", "value", "dense"}, {"dense"}),
                "deberta-v2": ({"key_proj", "value_proj", "dense"}, {"dense"}),
                "gemma3_text": ({"k_proj", "v_proj", "down_proj"}, {"down_proj"}),
                "mt5": ({"k", "v", "wo"}, {"wo"}), "marian": ({"k_proj", "v_proj", "fc2"}, {"fc2"})}
    assert (leaves, feedforward) == expected[arch["model_type"]]
    assert not any("attention.output" in n for n in layers)  # the FFN's output linear only
