"""Every config option composes, and the ones that run offline instantiate (LHT test_configs)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import CONF, compose_cfg
from localize.utils import build

OPTIONS = {g: sorted(p.stem for p in (Path(CONF) / g).glob("*.yaml")) for g in
           ("model", "locale", "task", "adapter", "trainer", "logger", "experiment", "hparams_search", "recipe")}
OFFLINE_MODELS = {"e5_small", "minilm", "tiny_random"}


@pytest.mark.parametrize("locale", OPTIONS["locale"])
@pytest.mark.parametrize("task", ["ner", "sentiment", "classification"])
def test_locale_task_compose(locale, task):
    cfg = compose_cfg([f"+locale={locale}", f"task={task}"], "/tmp/x")
    OmegaConf.resolve(cfg)
    assert cfg.locale.code == locale and cfg.data.locale.code == locale
    assert cfg.task.name == task


# Methods that train (adapter=icl, prompting with no learning rate: tests/test_in_context.py).
TRAINED = [a for a in OPTIONS["adapter"]
           if OmegaConf.load(Path(CONF) / "adapter" / f"{a}.yaml").get("lr", "inherited") is not None]


@pytest.mark.parametrize("adapter", TRAINED)
@pytest.mark.parametrize("task", ["ner", "sentiment"])
def test_adapter_instantiates_on_tiny_model(adapter, task):
    cfg = compose_cfg(["+locale=ja", f"task={task}", "model=tiny_random", f"adapter={adapter}"], "/tmp/x")
    module = instantiate(cfg.module, label_names=["O", "B-X", "I-X"])
    counts = module.param_counts
    assert 0 < counts["trainable"] <= counts["total"]
    assert (counts["trainable"] < counts["total"]) == (cfg.adapter.peft is not None or cfg.adapter.freeze_embeddings)
    if cfg.adapter.peft is not None:  # the task's peft task type, set by the module (adapters never read the task)
        assert module.model.peft_config["default"].task_type == cfg.task.peft_task_type


@pytest.mark.parametrize("model", OPTIONS["model"])
def test_model_configs_compose(model):
    """Each model file names itself, points at an embedded model, the tiny test model or a hub repo
    (``org/name``), and declares heads the backbone builder knows; the offline ones load their tokenizer."""
    from localize.models.backbones import EMBEDDED, HEADS, TINY_RANDOM

    cfg = compose_cfg(["+locale=ja", "task=ner", f"model={model}"], "/tmp/x")
    OmegaConf.resolve(cfg)
    assert cfg.model.name == model
    path = cfg.model.name_or_path
    assert path in EMBEDDED or path == TINY_RANDOM or re.fullmatch(r"[\w.-]+/[\w.-]+", path), path
    assert cfg.model.heads and set(cfg.model.heads) <= set(HEADS)
    if model in OFFLINE_MODELS:
        tokenizer = instantiate(cfg.data).tokenizer  # resolves offline
        assert tokenizer.is_fast and len(tokenizer) > 1000


def _expected_leaves(group: str, option: str) -> dict[str, object]:
    """Literal values an option file sets, itself or through the same-group files its defaults include."""
    node = OmegaConf.to_container(OmegaConf.load(Path(CONF) / group / f"{option}.yaml"))
    out: dict[str, object] = {}
    for entry in node.pop("defaults", []):
        if isinstance(entry, str) and entry != "_self_":
            out.update(_expected_leaves(group, entry))

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif "${" not in str(value):
            out[prefix] = value
        else:  # an interpolation resolves elsewhere; it replaces what an included file set
            out.pop(prefix, None)

    walk("", node)
    return out


@pytest.mark.parametrize("group, option", [(g, o) for g in ("trainer", "logger") for o in OPTIONS[g]])
def test_trainer_and_logger_options_compose(group, option):
    """Choosing an option puts that file's values (and those of the files it extends) in the config."""
    cfg = compose_cfg(["+locale=ja", f"{group}={option}"], "/tmp/x")
    OmegaConf.resolve(cfg)
    expected = _expected_leaves(group, option)
    assert expected, f"{group}/{option}.yaml sets nothing"
    assert {k: OmegaConf.select(cfg[group], k) for k in expected} == expected


def test_the_experiments_exist():
    assert {"translation_lora", "ner_lora_searched"} <= set(OPTIONS["experiment"])


@pytest.mark.parametrize("option", OPTIONS["experiment"])
def test_every_experiment_composes_and_selects_what_it_says(option):
    """An experiment's file starts with the command that runs it, selects the task and adapter its
    defaults name, and changes the resolved config it overrides."""
    path = Path(CONF) / "experiment" / f"{option}.yaml"
    header = path.read_text().splitlines()[:2]
    assert header[0] == "# @package _global_" and header[1].startswith(
        f"# python -m localize.train experiment={option} +locale=ja")
    cfg = compose_cfg([f"experiment={option}", "+locale=ja"], "/tmp/x")
    OmegaConf.resolve(cfg)
    for entry in OmegaConf.load(path).defaults:
        (key, value), = entry.items()
        group = key.removeprefix("override /")
        assert OmegaConf.select(cfg, f"{group}.name") == value, (group, value)
    own = _expected_leaves("experiment", option)
    assert own.get("tags"), f"{option}: an experiment tags its runs"
    assert {k: OmegaConf.select(cfg, k) for k in own} == own
    plain = compose_cfg(["+locale=ja", f"task={cfg.task.name}", f"adapter={cfg.adapter.name}"], "/tmp/x")
    assert plain.tags != cfg.tags


def test_recipes_are_named_after_a_task_and_an_adapter():
    """``optional recipe: ${task}_${adapter}`` silently skips a misnamed file: every recipe must be
    reachable from a real task and adapter, and must change the config it is picked for."""
    pairs = {f"{t}_{a}": (t, a) for t in OPTIONS["task"] for a in OPTIONS["adapter"]}
    assert OPTIONS["recipe"] and set(OPTIONS["recipe"]) <= set(pairs)
    for recipe in OPTIONS["recipe"]:
        task, adapter = pairs[recipe]
        cfg = compose_cfg(["+locale=ja", f"task={task}", f"adapter={adapter}"], "/tmp/x")
        expected = _expected_leaves("recipe", recipe)  # its literal values, with those of the recipes it includes
        assert expected and {k: OmegaConf.select(cfg, k) for k in expected} == expected, recipe


@pytest.mark.parametrize("task", OPTIONS["task"])
def test_every_task_and_adapter_pair_composes_with_its_own_learning_rate(task):
    """A pair gets its recipe's lr when it has one, else the adapter file's own."""
    for adapter in OPTIONS["adapter"]:
        cfg = compose_cfg(["+locale=ja", f"task={task}", f"adapter={adapter}"], "/tmp/x")
        OmegaConf.resolve(cfg)
        recipe = Path(CONF) / "recipe" / f"{task}_{adapter}.yaml"
        own = _expected_leaves("adapter", adapter)["lr"]
        expected = OmegaConf.select(OmegaConf.load(recipe), "adapter.lr", default=own) if recipe.exists() else own
        assert (cfg.task.name, cfg.adapter.name, cfg.module.lr) == (task, adapter, expected)


def test_adapters_never_read_the_task_and_tasks_never_name_an_adapter():
    for adapter in OPTIONS["adapter"]:
        text = (Path(CONF) / "adapter" / f"{adapter}.yaml").read_text()
        # Even peft's task type comes from the task through the module (module.peft_task_type).
        assert not re.findall(r"\btask\.([\w.]+)", text), adapter

    def keys(node, prefix=()):
        for k, v in node.items():
            yield prefix + (k,)
            if isinstance(v, dict):
                yield from keys(v, prefix + (k,))

    for task in OPTIONS["task"]:
        node = OmegaConf.to_container(OmegaConf.load(Path(CONF) / "task" / f"{task}.yaml"))
        named = {part for path in keys(node) for part in path} & set(OPTIONS["adapter"])
        assert not named, (task, named)


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


def test_translation_lora_recipe_gives_the_same_run_whichever_way_it_is_selected():
    """README's command and the experiment file: LoRA lr 2e-3 and the same module either way; NER
    gets its own (conf/recipe/ner_lora.yaml); the command line still wins over the recipe."""
    command = compose_cfg(["+locale=ja", "task=translation", "adapter=lora"], "/tmp/x")
    experiment = compose_cfg(["experiment=translation_lora", "+locale=ja"], "/tmp/x")
    assert command.adapter.lr == experiment.adapter.lr == 2e-3
    a, b = (OmegaConf.to_container(c, resolve=True) for c in (command, experiment))
    assert a["module"]["lr"] == 2e-3 and a["module"] == b["module"]
    # The experiment only adds its tags (and the overrides it was composed with differ, of course).
    assert {k for k in a if a[k] != b.get(k)} - {"composed_overrides"} == {"tags"}
    ner = compose_cfg(["+locale=ja", "task=ner", "adapter=lora"], "/tmp/x")  # NER's own searched recipe
    assert ner.module.lr == pytest.approx(6.68e-4, rel=1e-3) and ner.module.prior_bias is True
    assert compose_cfg(["+locale=ja", "task=translation", "adapter=adalora"], "/tmp/x").adapter.lr == \
        compose_cfg(["+locale=ja", "task=sentiment", "adapter=adalora"], "/tmp/x").adapter.lr == 2e-3  # no recipe
    for overrides in (["+locale=ja", "task=translation", "adapter=lora"], ["experiment=translation_lora", "+locale=ja"]):
        assert compose_cfg(overrides + ["adapter.lr=1e-3"], "/tmp/x").module.lr == 1e-3


def test_lr_and_head_lr_reach_the_optimizer_as_module_arguments():
    cfg = compose_cfg(["+locale=ja", "task=ner", "model=tiny_random", "adapter=lora", "adapter.lr=1.5e-3",
                       "adapter.head_lr=7e-4"], "/tmp/x")
    assert "lr" not in cfg.module.optimizer  # the partial carries no lr to be read back out of it
    module = instantiate(cfg.module, scheduler=None, label_names=["O", "B-X", "I-X"])
    optimizer = module.configure_optimizers()
    lrs = {}
    names = {id(p): n for n, p in module.model.named_parameters()}
    for group in optimizer.param_groups:
        for p in group["params"]:
            lrs[names[id(p)]] = group["lr"]
    assert {lr for n, lr in lrs.items() if "lora_" in n} == {1.5e-3}
    assert {lr for n, lr in lrs.items() if "classifier" in n} == {7e-4}
    # Named groups: W&B and metrics.csv show lr-AdamW/head, not lr-AdamW/pg3.
    by_name = {g["name"]: g for g in optimizer.param_groups}
    assert set(by_name) == {"body", "head", "head_no_decay"}  # LoRA trains no body biases
    assert by_name["head"]["lr"] == 7e-4 and by_name["body"]["lr"] == 1.5e-3
    assert by_name["head_no_decay"]["weight_decay"] == 0.0 and by_name["head"]["weight_decay"] > 0
    with pytest.raises(ValueError, match=r"adapter.lr must be > 0, got -1"):
        build(cfg.module, lr=-1, label_names=["O", "B-X", "I-X"])


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
    assert "{source}" in cfg.task.prompt
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
