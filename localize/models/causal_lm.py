"""Translation with a decoder-only LM (Gemma-3; or an encoder-decoder: mT5, opus-mt): target-only
loss, generation-based chrF/BLEU.

The loss is the HF forward's ``outputs.loss`` (so AdaLoRA's orthogonal regulariser stays); labels
are -100 on the prompt. Dev and test scores come from greedy generation on the (capped) splits:
chrF (the monitor), BLEU, exact match and placeholder preservation (``tracking.mt_metrics``).
``ZeroShotEvalCallback`` scores the model before localization on the same test set.
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import math
import time
from typing import Any, Iterable, Iterator

import pytorch_lightning as pl
import torch
from torchmetrics import MaxMetric

from localize.models.backbones import load_tokenizer
from localize.models.module import LocalizeLitModule
from localize.models.tokens import eos_id, language_token_id, language_tokens, pad_id
from localize.tracking.intervals import TestPredictions

log = logging.getLogger(__name__)

GENERATION_DEFAULTS = {"max_new_tokens": 48, "num_beams": 1, "do_sample": False}
# Logged as <stage>/<name>; the full sacrebleu output (signatures, counts) goes to the run record.
LOGGED_SCORES = ("chrf", "bleu", "exact_match", "placeholder_preservation", "placeholder_preservation_with")


class TranslationLitModule(LocalizeLitModule):
    """en→xx translation system on a causal LM, or an encoder-decoder (detected from the model).

    Batches are left-padded (right-padded for encoder-decoders; ``TranslationDataModule``) and carry ``input_ids``/``attention_mask``/
    ``labels`` (prompt + target), ``prompt_ids``/``prompt_mask`` (prompt alone, for generation),
    ``source``/``reference`` strings and ``index``.

    Args:
        tokenizer: the model's tokenizer (``model.tokenizer``), for decoding generated ids.
        target_lang: target language code (picks the BLEU tokenizer: ``ja`` → MeCab or characters).
        generation: ``generate`` arguments (``max_new_tokens``, ``num_beams``, ``do_sample`` …).
        stop_at_newline: end a translation at its first newline (UI strings are translated one
            line at a time; base models otherwise ramble on with the next prompt line).
        n_samples: sample outputs per stage kept in the run record.
        model_heads: heads the model config declares (``model.heads``); must include ``causal_lm``
            or ``seq2seq_lm``.
        lang_codes: locale code → the model's language token (NLLB/M2M100/mBART-50,
            ``model.translation.lang_codes``): the tokenizer marks source and target with them and
            generation starts every output with the target's token (``forced_bos_token_id``).
        reverse: xx→en (``task.reverse``): English is the target, ``target_lang`` the source.
        *args, **kwargs: see ``LocalizeLitModule``.
    """

    def __init__(
        self,
        *args: Any,
        tokenizer: str,
        target_lang: str | None = None,
        generation: dict[str, Any] | None = None,
        stop_at_newline: bool = True,
        n_samples: int = 8,
        model_heads: list[str] | None = None,
        lang_codes: dict[str, str] | None = None,
        reverse: bool = False,
        **kwargs: Any,
    ) -> None:
        if model_heads is not None and not {"causal_lm", "seq2seq_lm"} & set(model_heads):
            # transformers would load an encoder (BERT) as a causal LM and train it without complaint.
            raise ValueError(f"model '{kwargs.get('base_model')}' has no causal_lm or seq2seq_lm head "
                             f"(model.heads={list(model_heads)}): use model=gemma3_270m for task=translation")
        super().__init__(*args, **kwargs)
        # task.reverse: xx→en, so English is the target (its BLEU tokenizer and language token).
        languages = language_tokens(lang_codes, target_lang, reverse=reverse)
        target_lang = "en" if reverse else target_lang
        self.tokenizer = load_tokenizer(tokenizer, **languages)
        self.target_lang = target_lang or "und"
        self.eos_id, self.pad_id = eos_id(self.tokenizer), pad_id(self.tokenizer)
        stops = [self.eos_id] + (newline_ids(self.tokenizer) if stop_at_newline else [])
        self.generation = {**GENERATION_DEFAULTS, **dict(generation or {}),
                           "eos_token_id": stops, "pad_token_id": self.pad_id}
        if languages:  # the decoder starts from EOS; the target code must follow it
            self.generation["forced_bos_token_id"] = language_token_id(self.tokenizer, languages["tgt_lang"])
        self.n_samples = n_samples
        self.encoder_decoder = bool(getattr(self.model.config, "is_encoder_decoder", False))  # peft forwards .config
        self._slice_logits = not self.encoder_decoder and _can_slice_logits(self.model)
        if getattr(getattr(self.model, "active_peft_config", None), "is_prompt_learning", False):
            if self.encoder_decoder:  # not verified to reach generate(): refuse rather than mis-score
                raise ValueError("prompt-learning adapters (prefix) are not supported for encoder-decoder "
                                 "translation models here: use adapter=lora (or adalora/full)")
            self._check_generation_sees_adapter()
        self._records: dict[str, list[dict]] = {"val": [], "test": []}
        self.samples: dict[str, list[dict]] = {}
        self.scores: dict[str, dict[str, Any]] = {}
        # Every generate() call of the run: new tokens up to each sequence's end, and the padded positions
        # the batch computed (a batch runs until its longest sequence ends).
        self.generation_speed = {"seconds": 0.0, "new_tokens": 0, "positions": 0, "sequences": 0}
        self.val_chrf_best = MaxMetric()

    def _check_generation_sees_adapter(self) -> None:
        """Fail now if ``generate`` scores the next token differently from the training forward.

        peft injects prefix-tuning key/values through ``past_key_values`` inside
        ``prepare_inputs_for_generation``; transformers 5 passes the KV cache as ``cache`` there,
        so with peft 0.21 the prefix is dropped (and the attention mask misaligned) at generation
        time while training uses it: evaluation would silently score a different model.
        """
        import peft
        import transformers

        ids = torch.tensor([self.tokenizer("Open the file")["input_ids"]])
        mask = torch.ones_like(ids)
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            with torch.no_grad():
                forward = self.model(input_ids=ids, attention_mask=mask).logits[:, -1].float()
                generated = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=1,
                                                do_sample=False, num_beams=1, output_logits=True,
                                                return_dict_in_generate=True, pad_token_id=self.pad_id)
        finally:
            for m, mode in modes:
                m.training = mode
        if not torch.allclose(forward, generated.logits[0].float(), atol=1e-3, rtol=1e-3):
            name = type(self.model.active_peft_config).__name__
            raise ValueError(
                f"{name} does not reach generate() with peft {peft.__version__} + transformers "
                f"{transformers.__version__} (the prefix goes in as past_key_values, which generation now passes "
                f"as `cache`), so translations would ignore the trained prefix. Use adapter=lora (or adalora/full) "
                f"for task=translation"
            )

    # ---- loss ----------------------------------------------------------------------------------
    def _loss(self, batch: dict[str, Any]) -> torch.Tensor:
        mask, labels = batch["attention_mask"], batch["labels"]
        if self.encoder_decoder:  # the model shifts the labels right into its decoder inputs
            return self(input_ids=batch["input_ids"], attention_mask=mask, labels=labels).loss
        inputs = {"input_ids": batch["input_ids"], "attention_mask": mask, "position_ids": positions(mask),
                  "use_cache": False}
        if self._slice_logits and bool(mask[:, -1].all()):
            # Left padding puts every target (+ EOS) in the last positions: the output layer (262k
            # words for Gemma-3, more FLOPs than the transformer body) runs there only. The first
            # kept position is a prompt token (label -100) whose logits predict the first target.
            keep = min(int((labels != -100).sum(1).max()) + 1, labels.shape[1])
            inputs.update(labels=labels[:, -keep:], logits_to_keep=keep)
        else:
            inputs["labels"] = labels
        # The loss comes out of the HF/peft forward: AdaLoRA adds its orthogonal regulariser there.
        return self(**inputs).loss

    def training_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return self._loss(batch)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    # ---- generation-based evaluation -----------------------------------------------------------
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        scores = self._stage_scores("val")
        if scores is None:
            return
        self.val_chrf_best(scores["chrf"])
        self.log("val/chrf_best", self.val_chrf_best.compute(), prog_bar=True)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._stage_scores("test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> list[str]:
        """One translation per prompt; ``TranslationDataModule.decode_outputs`` reassembles lines."""
        return self.generate_texts(batch["prompt_ids"], batch["prompt_mask"])

    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        self.log(f"{stage}/loss", self._loss(batch), batch_size=batch["input_ids"].shape[0], sync_dist=True)
        self._records[stage] += _records(batch, self.generate_texts(batch["prompt_ids"], batch["prompt_mask"]))

    def _stage_scores(self, stage: str) -> dict[str, Any] | None:
        records = _dedupe(self._gather(self._records[stage]))
        self._records[stage] = []
        if not records:
            return None
        scores = self.score(records)
        self.scores[stage], self.samples[stage] = scores, records[: self.n_samples]
        if stage == "test":
            self._test_predictions = TestPredictions("translation", [dict(r) for r in records],
                                                     {"target_lang": self.target_lang})
        self.log_dict({f"{stage}/{k}": float(scores[k]) for k in LOGGED_SCORES if _finite(scores[k])},
                      prog_bar=stage == "val")
        return scores

    def score(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """``translation_scores`` of records with ``source``/``reference``/``hypothesis``."""
        from localize.tracking.mt_metrics import translation_scores

        return translation_scores([r["source"] for r in records], [r["hypothesis"] for r in records],
                                  [r["reference"] for r in records], self.target_lang)

    def _gather(self, records: list[dict]) -> list[dict]:
        """All ranks' records (DistributedSampler's padding duplicates are dropped by index)."""
        trainer = self._trainer
        if trainer is None or trainer.world_size == 1 or not torch.distributed.is_initialized():
            return records
        parts: list[list[dict]] = [[] for _ in range(trainer.world_size)]
        torch.distributed.all_gather_object(parts, records)
        return [r for part in parts for r in part]

    @torch.no_grad()
    def generate_texts(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, base: bool = False) -> list[str]:
        """Greedy (by default) translations of left-padded prompts, cut at the first newline.

        Args:
            base: generate with the adapter disabled (the model before localization).
        """
        model, ctx = self.model, contextlib.nullcontext()
        if base and hasattr(model, "disable_adapter"):
            # LoRA/AdaLoRA layers switched off; prompt-learning prefixes bypassed via the base model.
            ctx, model = model.disable_adapter(), model.get_base_model()
        start = time.perf_counter()
        with ctx, autocast_weight_cache(model):
            out = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, **self.generation)
        # A decoder-only model returns prompt + continuation; an encoder-decoder the output alone.
        new = out if self.encoder_decoder else out[:, prompt_ids.shape[1]:]
        speed, pad = self.generation_speed, self.tokenizer.pad_token_id
        speed["seconds"] += time.perf_counter() - start
        speed["new_tokens"] += int((new != pad).sum()) if pad is not None else new.numel()
        speed["positions"] += new.numel()
        speed["sequences"] += new.shape[0]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [t.strip().split("\n", 1)[0].strip() for t in texts]

    def evaluate_generation(self, batches: Iterable[dict[str, Any]], base: bool = False
                            ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Score generation over batches outside the Lightning loops (e.g. before training).

        Returns:
            ``(scores, records)``; records hold ``index``/``source``/``reference``/``hypothesis``.
        """
        records: list[dict] = []
        with self._inference():
            for batch in batches:
                ids, mask = batch["prompt_ids"].to(self.device), batch["prompt_mask"].to(self.device)
                records += _records(batch, self.generate_texts(ids, mask, base=base))
        records = _dedupe(records)
        return self.score(records), records

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        """Eval mode + the trainer's precision (autocast under bf16-mixed); modes restored after."""
        modes = [(m, m.training) for m in self.modules()]
        trainer = self._trainer
        precision = trainer.precision_plugin.forward_context() if trainer is not None else contextlib.nullcontext()
        self.eval()
        try:
            with torch.no_grad(), precision:
                yield
        finally:
            for m, mode in modes:
                m.training = mode

    def extra_results(self) -> dict[str, Any]:
        # NaN (e.g. placeholder share of a set without placeholders) is not valid JSON: None instead.
        scores = {stage: {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in s.items()}
                  for stage, s in self.scores.items()}
        # The prompt template is recorded with the data (``data.prompt``): the datamodule owns it.
        speed = dict(self.generation_speed)
        speed["new_tokens_per_s"] = speed["new_tokens"] / speed["seconds"] if speed["seconds"] else None
        return {"translation_scores": scores, "samples": self.samples, "generation_speed": speed,
                "generation": {k: v for k, v in self.generation.items() if k != "eos_token_id"}}


class ZeroShotEvalCallback(pl.Callback):
    """Scores the model *before* localization (adapter disabled) at the start of ``fit``.

    Logs ``zeroshot/chrf``, ``zeroshot/bleu``, ``zeroshot/exact_match``,
    ``zeroshot/placeholder_preservation`` on the datamodule's test split (the same capped set the
    localized model is tested on) and puts them in ``trainer.callback_metrics`` so the run record
    holds both. The scores are stored in checkpoints: a resumed run reports them without
    re-running (its weights are no longer the base model's). Every rank scores the full split
    (identical results, no gathering).

    Args:
        split: ``test`` or ``validation``.
        prefix: metric prefix.
    """

    def __init__(self, split: str = "test", prefix: str = "zeroshot") -> None:
        if split not in ("test", "validation"):
            raise ValueError(f"ZeroShotEvalCallback split must be 'test' or 'validation', got {split!r}")
        self.split, self.prefix = split, prefix
        self.scores: dict[str, float] | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not hasattr(pl_module, "evaluate_generation"):
            raise TypeError(f"ZeroShotEvalCallback needs a module with evaluate_generation(); "
                            f"{type(pl_module).__name__} has none: remove task.callbacks.zeroshot")
        if self.scores is None:
            if trainer.ckpt_path:
                log.warning("resumed run without stored zero-shot scores: skipping the zero-shot evaluation")
                return
            dm = trainer.datamodule
            if dm is None:
                raise ValueError("ZeroShotEvalCallback needs trainer.fit(..., datamodule=...)")
            dm.setup("test" if self.split == "test" else "validate")
            loader = dm.test_dataloader() if self.split == "test" else dm.val_dataloader()
            start = time.perf_counter()
            scores, records = pl_module.evaluate_generation(loader, base=True)
            self.scores = {k: float(scores[k]) for k in LOGGED_SCORES if _finite(scores[k])}
            self.scores["seconds"] = time.perf_counter() - start
            pl_module.scores[self.prefix] = scores
            pl_module.samples[self.prefix] = records[: getattr(pl_module, "n_samples", 8)]
            log.info("zero-shot (%s, n=%d): %s", self.split, len(records), self.scores)
        metrics = {f"{self.prefix}/{k}": v for k, v in self.scores.items()}
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=0)

    def state_dict(self) -> dict[str, Any]:
        return {"scores": self.scores}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.scores = state_dict.get("scores")


@contextlib.contextmanager
def autocast_weight_cache(model: torch.nn.Module) -> Iterator[None]:
    """Under autocast, cast each fp32 weight to the autocast dtype once for the whole block, not at every use.

    Autocast caches a weight's cast only for leaves that require grad, and Lightning's precision plugin turns
    the cache off, so a frozen base model (LoRA, zero-shot) was re-cast at every decoding step: 42% of
    Gemma-3's generation time on CPU (torch.profiler, bf16). Frozen weights are marked as requiring grad for
    the block (under no_grad nothing records a graph) and the cache is on; the casts, hence the outputs, are
    the same. Outside autocast this does nothing.
    """
    param = next(model.parameters(), None)
    if param is None or torch.is_grad_enabled() or not torch.is_autocast_enabled(param.device.type):
        yield
        return
    device = param.device.type
    frozen = [p for p in model.parameters() if not p.requires_grad and p.dtype == torch.float32]
    for p in frozen:
        p.requires_grad_(True)
    try:
        with torch.autocast(device, dtype=torch.get_autocast_dtype(device), cache_enabled=True):
            yield
    finally:
        for p in frozen:
            p.requires_grad_(False)


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token (as ``generate`` computes them)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def newline_ids(tokenizer) -> list[int]:
    """Vocabulary entries that contain a newline (SentencePiece ``\\n``/``<0x0A>``, byte-level ``Ċ``)."""
    return sorted(i for t, i in tokenizer.get_vocab().items() if "\n" in t or "Ċ" in t or t == "<0x0A>")


def _can_slice_logits(model: torch.nn.Module) -> bool:
    """Whether the forward takes ``logits_to_keep`` with labels aligned to ``input_ids``.

    Prompt/p-tuning prepend virtual tokens (and -100 labels) to the inputs, which breaks the
    alignment; prefix tuning adds keys/values only and keeps it.
    """
    config = getattr(model, "active_peft_config", None)
    if getattr(config, "is_prompt_learning", False) and str(config.peft_type) != "PREFIX_TUNING":
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def _records(batch: dict[str, Any], hyps: list[str]) -> list[dict[str, Any]]:
    return [{"index": int(i), "source": s, "reference": r, "hypothesis": h}
            for i, s, r, h in zip(batch["index"], batch["source"], batch["reference"], hyps)]


def _dedupe(records: list[dict]) -> list[dict]:
    by_index = {r["index"]: r for r in records}
    return [by_index[i] for i in sorted(by_index)]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
