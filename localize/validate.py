"""Types and ranges of the config knobs users set, checked before anything is built.

One table (:data:`KNOBS`): key → allowed types, range or choices, and an example value that the
error message offers as the fix (``Fix: trainer.max_epochs=3``). A key the composed config does not
have (``adapter.peft.r`` under ``adapter=full``, ``quantize`` outside ``localize.export``) is skipped;
null passes only where the knob allows it. Ranges of ``max_length``, ``max_epochs`` and the example
caps are the run-status checks' (refused where they cannot take effect); here only their types.

    check_config(cfg)   # raises ValueError: "trainer.max_epochs='abc' is not an integer. Fix: trainer.max_epochs=3"
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

_ABSENT = object()


@dataclass(frozen=True)
class Knob:
    """What one key accepts.

    Attributes:
        kind: ``int``, ``float`` (ints too), ``bool``, ``str``, ``fraction`` (a float in [0, 1] or an int
            count: Lightning's ``limit_*_batches``), ``int_or_str`` (``devices``: 1, "auto").
        example: the value offered as the fix.
        min: smallest allowed value (inclusive).
        max: largest allowed value (inclusive).
        below: exclusive upper bound (``lora_dropout < 1``).
        above: exclusive lower bound (``lr > 0``).
        choices: allowed values.
        nullable: null is allowed.
        why: what the knob is, for the message.
    """

    kind: str
    example: Any
    min: float | None = None
    max: float | None = None
    below: float | None = None
    above: float | None = None
    choices: tuple | None = None
    nullable: bool = False
    why: str = ""


KNOBS: dict[str, Knob] = {
    # ---- top level (first: data.seed interpolates seed, so the source is named)
    "seed": Knob("int", 42),
    "test": Knob("bool", True),
    "threads": Knob("int", 1, min=1, nullable=True, why="torch compute threads of this process"),
    "batch_size": Knob("int", 32, min=1, nullable=True, why="texts per forward pass (predict)"),
    "quantize": Knob("str", "int8", choices=("int8",), nullable=True),
    "atol": Knob("float", 1e-4, above=0),
    "overwrite": Knob("bool", False),
    "evaluate_quantized": Knob("bool", True),
    # ---- data (every task's datamodule)
    "data.batch_size": Knob("int", 16, min=1, why="training examples per batch"),
    "data.eval_batch_size": Knob("int", 32, min=1, why="evaluation examples per batch"),
    "data.max_length": Knob("int", 256, nullable=True, why="tokens per example"),
    "data.max_train_examples": Knob("int", 1000, nullable=True, why="cap on training examples"),
    "data.max_eval_examples": Knob("int", 100, nullable=True, why="cap on dev/test examples"),
    "data.num_workers": Knob("int", 0, min=0, why="DataLoader worker processes"),
    "data.seed": Knob("int", 42, nullable=True),
    "data.group_by_length": Knob("bool", True),
    "data.cache_tokenized": Knob("bool", True),
    "data.char_level": Knob("bool", False, nullable=True),
    "data.sep": Knob("str", "tab", nullable=True, why="CoNLL column separator (null: any whitespace)"),
    "data.token_col": Knob("int", 0, why="CoNLL token column"),
    "data.tag_col": Knob("int", -1, why="CoNLL tag column"),
    # The names are checked by the NER datamodule (localize.data.ner_formats.check_format lists them).
    "data.format": Knob("str", "doccano", nullable=True, why="NER input format (null: told from the file)"),
    "data.max_chars": Knob("int", 1500, min=1, why="character budget per text"),
    "data.truncation": Knob("str", "head_tail", choices=("head", "head_tail")),
    "data.use_class_weights": Knob("bool", False),
    "data.text_field": Knob("str", "text"),
    "data.label_field": Knob("str", "label"),
    "data.min_words": Knob("int", 3, min=0),
    "data.drop_identical": Knob("bool", True),
    # Range of cv_fold against cv_folds: sources.check_folds (a DataError naming both keys).
    "data.cv_folds": Knob("int", 5, min=2, nullable=True, why="cross-validation folds (null: the plain split)"),
    "data.cv_fold": Knob("int", 0, nullable=True, why="the fold tested in this run (0 .. data.cv_folds-1)"),
    "data.cv_dev": Knob("float", 0.1, min=0, nullable=True, why="dev share (or count) of a fold's training part"),
    # Range of part against parts: data.stages.check_part.
    "data.parts": Knob("int", 2, min=2, nullable=True, why="disjoint shares of train/dev (continual stages)"),
    "data.part": Knob("int", 0, nullable=True, why="the share kept (0 .. data.parts-1)"),
    "data.replay_size": Knob("float", 50, min=0, nullable=True, why="replayed examples: a count or a fraction"),
    # The range (0, 1) and the split names: data.noise.check_noise.
    "data.label_noise": Knob("float", 0.05, min=0, nullable=True, why="share of examples given a wrong label"),
    # ---- trainer (pytorch_lightning.Trainer)
    "trainer.max_epochs": Knob("int", 3, nullable=True, why="training epochs"),
    "trainer.max_steps": Knob("int", -1, min=-1, why="optimizer steps (-1: no limit)"),
    "trainer.min_epochs": Knob("int", 1, min=0, nullable=True),
    "trainer.accumulate_grad_batches": Knob("int", 1, min=1),
    "trainer.gradient_clip_val": Knob("float", 1.0, min=0, nullable=True),
    "trainer.log_every_n_steps": Knob("int", 5, min=1),
    "trainer.check_val_every_n_epoch": Knob("int", 1, min=1, nullable=True),
    "trainer.num_sanity_val_steps": Knob("int", 0, min=-1),
    "trainer.limit_train_batches": Knob("fraction", 1.0, min=0, nullable=True),
    "trainer.limit_val_batches": Knob("fraction", 1.0, min=0, nullable=True),
    "trainer.limit_test_batches": Knob("fraction", 1.0, min=0, nullable=True),
    "trainer.val_check_interval": Knob("fraction", 1.0, min=0, nullable=True),
    "trainer.devices": Knob("int_or_str", 1),
    "trainer.deterministic": Knob("bool", True),
    "trainer.precision": Knob("str", "32-true", choices=("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true",
                                                         "16-true", "64-true", 32, 16, 64, "bf16", "16")),
    "trainer.accelerator": Knob("str", "auto", choices=("auto", "cpu", "gpu", "cuda", "mps", "tpu")),
    # ---- adapter / module (the optimiser and the peft config)
    # null: nothing trains (adapter=icl); a trained method without one is refused by the module, with the fix.
    "adapter.lr": Knob("float", 3e-4, above=0, nullable=True, why="learning rate"),
    "adapter.head_lr": Knob("float", 1e-3, above=0, nullable=True, why="learning rate of the head"),
    "adapter.k": Knob("int", 4, min=0, why="in-context demonstrations per prompt"),
    "adapter.selection": Knob("str", "random", choices=("random", "nearest"), why="how demonstrations are picked"),
    "adapter.calibrate": Knob("bool", False, why="contextual calibration"),
    "adapter.freeze_embeddings": Knob("bool", False),
    "adapter.peft.r": Knob("int", 16, min=1, why="LoRA rank"),
    "adapter.peft.lora_alpha": Knob("float", 32, above=0, why="LoRA scale"),
    "adapter.peft.lora_dropout": Knob("float", 0.1, min=0, below=1),
    "adapter.peft.init_r": Knob("int", 12, min=1, why="AdaLoRA initial rank"),
    "adapter.peft.target_r": Knob("int", 8, min=1, why="AdaLoRA target rank"),
    "adapter.peft.num_virtual_tokens": Knob("int", 20, min=1, why="prefix length"),
    "module.warmup_ratio": Knob("float", 0.1, min=0, max=1),
    "module.head_warmup_ratio": Knob("float", 0.0, min=0, max=1, why="share of steps training the head alone"),
    "module.gradient_checkpointing": Knob("bool", False),
    "module.crf": Knob("bool", False),
    "module.prior_bias": Knob("bool", False),
    "module.decoding": Knob("str", "viterbi", choices=("argmax", "viterbi"), why="word tags from NER logits"),
    "module.optimizer.weight_decay": Knob("float", 0.01, min=0),
    "callbacks.early_stopping.patience": Knob("int", 10, min=0),
}

_KIND_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "fraction": "a fraction in [0, 1] or a whole count", "int_or_str": "a count or a name"}


def _type_ok(kind: str, value: Any) -> bool:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_num = is_int or (isinstance(value, float) and math.isfinite(value))
    return {"int": is_int, "float": is_num, "bool": isinstance(value, bool), "str": isinstance(value, str),
            "fraction": is_num and (is_int or value <= 1),
            "int_or_str": is_int or isinstance(value, (str, list))}[kind]


def _problem(knob: Knob, value: Any) -> str | None:
    """What is wrong with ``value`` for ``knob`` (None: nothing)."""
    if value is None:
        return None if knob.nullable else "must be set (null is not allowed)"
    if knob.choices is not None:
        return None if value in knob.choices else f"is not one of {[c for c in knob.choices if isinstance(c, str)]}"
    if not _type_ok(knob.kind, value):
        return f"is not {_KIND_NAMES[knob.kind]}"
    if knob.kind in ("int", "float", "fraction"):
        if knob.min is not None and value < knob.min:
            return f"must be >= {knob.min:g}"
        if knob.max is not None and value > knob.max:
            return f"must be <= {knob.max:g}"
        if knob.below is not None and value >= knob.below:
            return f"must be < {knob.below:g}"
        if knob.above is not None and value <= knob.above:
            return f"must be > {knob.above:g}"
    return None


def _value(cfg: DictConfig, key: str) -> Any:
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
    except Exception:  # an interpolation only a running Hydra job resolves: not a user knob
        return _ABSENT
    if isinstance(value, DictConfig) or OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def check_config(cfg: DictConfig) -> None:
    """Check every knob of :data:`KNOBS` the config has.

    Raises:
        ValueError: the first wrong value: ``<key>=<value> <problem> (<what it is>). Fix: <key>=<example>``.
    """
    tasks = OmegaConf.select(cfg, "adapter.tasks", default=None)
    task = OmegaConf.select(cfg, "task.name", default=None)
    if tasks and task not in tasks:  # a method made for some tasks only (adapter=icl: label words, example pairs)
        raise ValueError(f"adapter={cfg.adapter.name} works for task={'|'.join(tasks)}, not task={task}. "
                         f"Fix: task={tasks[0]}, or adapter=lora for task={task}")
    steps = OmegaConf.select(cfg, "trainer.max_steps", default=0)
    if OmegaConf.select(cfg, "module.frozen", default=False) and steps not in (0, None):
        # Nothing trains, so a step would backpropagate a loss without gradients (a deep autograd error).
        raise ValueError(f"adapter={cfg.adapter.name} trains no parameter (module.frozen=true), but "
                         f"trainer.max_steps={steps} asks for optimizer steps. Fix: trainer.max_steps=0")
    for key, knob in KNOBS.items():
        value = _value(cfg, key)
        if value is _ABSENT:
            continue
        problem = _problem(knob, value)
        if problem:
            what = f" ({knob.why})" if knob.why else ""
            raise ValueError(f"{key}={value!r} {problem}{what}. Fix: {key}={_override(knob.example)}")


def _override(value: Any) -> str:
    """A value as it is written on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):  # 1.0 stays a float: limit_*_batches=1 would mean one batch
        text = f"{value:g}"
        return text if any(c in text for c in ".en") else text + ".0"
    return str(value)
