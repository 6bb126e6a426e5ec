"""Every config option composes, and the ones that run offline instantiate (LHT test_configs)."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import CONF, compose_cfg

OPTIONS = {g: sorted(p.stem for p in (Path(CONF) / g).glob("*.yaml")) for g in
           ("model", "locale", "task", "adapter", "trainer", "logger", "experiment", "hparams_search")}
OFFLINE_MODELS = {"e5_small", "minilm", "tiny_random"}


@pytest.mark.parametrize("locale", OPTIONS["locale"])
@pytest.mark.parametrize("task", ["ner", "sentiment", "classification"])
def test_locale_task_compose(locale, task):
    cfg = compose_cfg([f"+locale={locale}", f"task={task}"], "/tmp/x")
    OmegaConf.resolve(cfg)
    assert cfg.locale.code == locale and cfg.data.locale.code == locale
    assert cfg.task.name == task


@pytest.mark.parametrize("adapter", OPTIONS["adapter"])
@pytest.mark.parametrize("task", ["ner", "sentiment"])
def test_adapter_instantiates_on_tiny_model(adapter, task):
    cfg = compose_cfg(["+locale=ja", f"task={task}", "model=tiny_random", f"adapter={adapter}"], "/tmp/x")
    module = instantiate(cfg.module, label_names=["O", "B-X", "I-X"])
    counts = module.param_counts
    assert 0 < counts["trainable"] <= counts["total"]
    assert (counts["trainable"] < counts["total"]) == (cfg.adapter.peft is not None or cfg.adapter.freeze_embeddings)


@pytest.mark.parametrize("model", OPTIONS["model"])
def test_model_configs_compose(model):
    cfg = compose_cfg(["+locale=ja", "task=ner", f"model={model}"], "/tmp/x")
    OmegaConf.resolve(cfg)
    assert cfg.module.backbone.name_or_path == cfg.model.name_or_path
    if model in OFFLINE_MODELS:
        instantiate(cfg.data)  # tokenizer path resolves offline


@pytest.mark.parametrize("group", ["trainer", "logger"])
def test_trainer_and_logger_options_compose(group):
    for option in OPTIONS[group]:
        cfg = compose_cfg(["+locale=ja", f"{group}={option}"], "/tmp/x")
        OmegaConf.resolve(cfg)


def test_every_experiment_composes():
    for option in OPTIONS["experiment"]:
        cfg = compose_cfg([f"experiment={option}"], "/tmp/x")
        OmegaConf.resolve(cfg)


@pytest.mark.parametrize("override,group", [("adapter=lorra", "adapter"), ("task=nerr", "task"),
                                            ("model=e6_small", "model"), ("+locale=xx", "locale")])
def test_unknown_choice_lists_options(override, group):
    with pytest.raises((ConfigCompositionException, MissingConfigException)) as err:
        compose_cfg([override], "/tmp/x")
    message = str(err.value)
    assert "Available options" in message and OPTIONS[group][0] in message


def test_translation_defaults_to_a_generative_model_and_model_still_wins():
    from tests.conftest import compose_cfg

    assert compose_cfg(["+locale=ja", "task=translation", "adapter=lora"]).model.name == "gemma3_270m"
    assert compose_cfg(["+locale=ja", "task=translation", "model=tiny_causal"]).model.name == "tiny_causal"
    assert compose_cfg(["+locale=ja", "task=ner"]).model.name == "e5_small"


def test_a_task_can_set_its_own_lora_learning_rate():
    from tests.conftest import compose_cfg

    assert compose_cfg(["+locale=ja", "task=translation", "adapter=lora"]).module.optimizer.lr == 2e-3
    assert compose_cfg(["+locale=ja", "task=ner", "adapter=lora"]).module.optimizer.lr == 3e-4
    assert compose_cfg(["+locale=ja", "task=ner", "adapter=lora", "adapter.lr=1e-3"]).module.optimizer.lr == 1e-3


@pytest.mark.parametrize("model, arch", [("mt5_small", {"model_type": "mt5", "feed_forward_proj": "gated-gelu"}),
                                         ("opus_mt", {"model_type": "marian"}),
                                         ("nllb_distilled", {"model_type": "m2m_100"})])
def test_hub_seq2seq_models_compose_for_translation_and_lora_finds_their_layers(model, arch):
    """mT5 / opus-mt / NLLB configs (hub only): the translation task picks the seq2seq head and the LoRA
    regex matches the real architecture's attention and FFN layers (a tiny random copy of it)."""
    import peft
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    cfg = compose_cfg(["+locale=ja", "task=translation", f"model={model}", "adapter=lora"], "/tmp/x")
    OmegaConf.resolve(cfg)
    assert (cfg.task.head, cfg.task.peft_task_type, cfg.data.encoder_decoder) == ("seq2seq_lm", "SEQ_2_SEQ_LM", True)
    assert "{source}" in cfg.task.prompt and cfg.module.prompt == cfg.task.prompt
    size = {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2} if arch["model_type"] == "mt5" else \
        {"d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
         "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32}
    extra = {"opus_mt": {"pad_token_id": 1, "decoder_start_token_id": 1, "eos_token_id": 0},
             "nllb_distilled": {"pad_token_id": 1, "decoder_start_token_id": 2, "eos_token_id": 2}}.get(model, {})
    tiny = AutoModelForSeq2SeqLM.from_config(AutoConfig.for_model(**arch, vocab_size=64, **size, **extra))
    lora = peft.get_peft_model(tiny, peft.LoraConfig(task_type="SEQ_2_SEQ_LM", r=2, target_modules=cfg.model.lora_target_modules))
    wrapped = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in lora.named_parameters() if "lora_A" in n}
    expected = {"q", "k", "v", "o", "wi_0", "wi_1", "wo"} if model == "mt5_small" else \
        {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"}
    assert wrapped == expected


def test_nllb_language_codes_are_nllb_tokens_for_every_locale():
    """Each locale's code maps to one of the FLORES-200 tokens NLLB's tokenizer knows."""
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    codes = compose_cfg(["+locale=ja", "task=translation", "model=nllb_distilled"], "/tmp/x").model.translation.lang_codes
    locales = {OmegaConf.load(p).code for p in (Path(CONF) / "locale").glob("*.yaml")}
    assert locales <= set(codes) and set(codes.values()) <= set(FAIRSEQ_LANGUAGE_CODES)
