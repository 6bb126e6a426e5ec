"""Export a trained run as a plain Hugging Face model folder: ``python -m localize.export run=<dir> out=<dir>``.

A LoRA/AdaLoRA adapter is merged into its base (``merge_and_unload``); a full fine-tune is written
as is. The folder (config with ``id2label``, ``model.safetensors``, tokenizer) loads with
``transformers.pipeline("token-classification", model=out)`` — no peft, no localize. The export is
verified: the reloaded folder's logits must equal the PeftModel's within ``atol`` (1e-4).

``quantize=int8`` adds ``torch.ao.quantization.quantize_dynamic`` on every ``nn.Linear`` (weights
int8, activations quantised on the fly; CPU inference) and reports size, latency and the metric
change on the run's own test split, in ``<out>/export.json``; the quantised weights are saved as
``<out>/quantized_int8.safetensors`` — plain tensors (each quantised Linear's int8 weight, scale,
zero point, bias) plus a JSON layout in the file's metadata naming the Linear each belongs to — a
format that cannot carry code; ``load_quantized(out)`` rebuilds the dynamic-quantised model from it.

``merge=false`` writes the LoRA/AdaLoRA adapter itself instead (``adapter_config.json`` +
``adapter_model.safetensors``, loaded with peft onto the base): its config names the base by its
public hub id (``localize.model_card.PUBLIC_BASES`` for the embedded models, the hub id a run
loaded, or ``base_model_id=``), never this machine's cache path, which goes to ``export.json``.

Every export is portable: ``README.md`` (``localize.model_card``: base model and licence, locale,
task, data and licence, test metrics with their 95% intervals, how to load it, the NER pipeline
setting that matches localize's decoding), and no machine-specific settings in the tokenizer
config (``MACHINE_KEYS``, absolute paths).

Prompt-learning adapters (prefix tuning) have nothing to merge and are refused. A pipeline tags
each token on its own (argmax): for a run that decodes otherwise (the NER default, Viterbi) export.json
"decoding" says so, and ``python -m localize.predict run=<dir> decoding=argmax`` reproduces the pipeline.
"""
from __future__ import annotations

import io
import json
import logging
import os
import time
import warnings
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from torch import nn

from localize.config import CONF_DIR
from localize.model_card import aggregation_strategy, card_json, portable_configs, render
from localize.models.crf import CRF_EXPORT_NOTE, unwrap_crf

# A pipeline tags each token on its own (argmax): a run scored with another decoder can differ in spans.
DECODING_EXPORT_NOTE = ("this run decodes with module.decoding={decoding} (valid IOB2 sequences); a pipeline decodes "
                        "each token on its own (argmax), so its spans can differ: python -m localize.predict "
                        "run={run} decodes as the run was scored, and with decoding=argmax as the pipeline does")
from localize.tracking.atomic import atomic_file, atomic_folder
from localize.runs import RunInfo, build_datamodule, build_untrained, load_run, read_run

log = logging.getLogger(__name__)

PIPELINE_TASK = {"token_classification": "token-classification", "sequence_classification": "text-classification"}
QUANTIZED_FILE = "quantized_int8.safetensors"
LEGACY_QUANTIZED_FILE = "quantized_int8.pt"  # older exports: a pickle, never read (it could run code)
QUANTIZED_FORMAT = "localize-int8-dynamic/1"
REPORT = "export.json"
CARD = "README.md"
# Inputs for the equality check: several scripts, entities, digits, a long-ish sentence.
SAMPLE_TEXTS = [
    "2005年7月14日、南アフリカ共和国ダーバンで開催中の第29回世界遺産会議で知床が登録された。",
    "東京都に住む山田太郎はトヨタ自動車に入社した。",
    "Angela Merkel besuchte am Montag Paris und traf Emmanuel Macron.",
    "北京是中华人民共和国的首都。",
    "OK",
]


def export(run_dir: str, out: str, quantize: str | None = None, atol: float = 1e-4, overwrite: bool = False,
           evaluate_quantized: bool = True, merge: bool = True, base_model_id: str | None = None) -> dict[str, Any]:
    """Write ``run_dir``'s model as a plain HF folder (or, ``merge=False``, its adapter) ``out`` and verify it.

    Args:
        run_dir: a finished run dir (LoRA/AdaLoRA adapter or full fine-tune).
        out: the folder to write (must not exist or be empty unless ``overwrite``).
        quantize: None or ``int8`` (dynamic quantisation of ``nn.Linear``; merged exports only).
        atol: largest allowed |logit difference| between the trained model and the exported folder.
        overwrite: replace an existing ``out``.
        evaluate_quantized: with ``quantize``, score fp32 and int8 on the run's test split.
        merge: merge a peft adapter into the base (a plain model folder); False writes the adapter.
        base_model_id: the base's public hub id, for bases localize cannot name (a local folder).

    Returns:
        The report written to ``<out>/export.json``.

    Raises:
        ValueError: a prompt-learning adapter; an adapter export of a full fine-tune, or of a base with
            no public id; logits differ by more than ``atol``; bad option values. FileExistsError: ``out`` exists.
    """
    from localize.model_card import base_model, check_hub_id

    if not isinstance(merge, bool):
        raise ValueError(f"merge={merge!r} is not a boolean: use merge=true (a plain model) or merge=false (the adapter)")
    base_model_id = check_hub_id(base_model_id)
    info = read_run(run_dir)
    if info.kind == "peft" and info.peft_config.is_prompt_learning:
        raise ValueError(
            f"{info.run_dir} holds a {info.peft_config.peft_type} adapter, which cannot be merged into the base "
            f"weights: its virtual tokens are extra key/value vectors fed to every attention layer, not weight "
            f"deltas. Serve it with peft (python -m localize.predict run={info.run_dir}) or retrain with "
            f"adapter=lora to export a plain model")
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize={quantize!r} is not supported: use quantize=int8 or leave it out")
    if not merge and info.kind != "peft":
        raise ValueError(f"merge=false writes an adapter, and {info.run_dir} is a full fine-tune (no adapter): "
                         f"leave out merge=false")
    if not merge and quantize:
        raise ValueError("quantize=int8 quantises merged weights: leave out merge=false, or leave out quantize")
    crf = bool(info.cfg.module.get("crf", False))
    if crf and not merge:
        raise ValueError(f"{info.run_dir} has a CRF head (module.crf=true), which a peft adapter folder cannot "
                         f"carry to a plain Transformers model: leave out merge=false")
    head = str(info.cfg.task.head)
    if head not in PIPELINE_TASK:
        raise ValueError(f"export writes classification models; {info.run_dir} has a {head} head")
    base = base_model(info.cfg, base_model_id)
    if not merge and base.hub_id is None:
        raise ValueError(f"merge=false names the base in adapter_config.json by its public hub id, and the base of "
                         f"{info.run_dir} ('{base.name_or_path}': {base.note or 'unknown'}) has none: pass "
                         f"base_model_id=<org>/<name> (its copy on the hub), or leave out merge=false")
    out = os.path.abspath(out)
    if os.path.exists(out) and os.listdir(out) and not overwrite:
        raise FileExistsError(f"'{out}' exists and is not empty: pass a new out=<dir>, or overwrite=true")

    module = load_run(run_dir)
    tokenizer = build_datamodule(info).tokenizer
    batch = tokenizer(SAMPLE_TEXTS, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode():
        reference = module.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = info.labels
    if merge:
        model = module.model.merge_and_unload() if info.kind == "peft" else module.model
        model = unwrap_crf(model)  # a CRF run exports its emission classifier (export.json "crf" says so)
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {name: i for i, name in enumerate(labels)}
        model.config.num_labels = len(labels)
    else:
        model = module.model  # the PeftModel: save_pretrained writes the adapter only

    with atomic_folder(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        portable_configs(tmp, base.hub_id if not merge else None, info.cfg.model.get("revision"))

    exported = _reload(out, head) if merge else _reload_adapter(out, info)
    with torch.inference_mode():
        logits = exported(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    mask = batch["attention_mask"].bool()
    diff = _max_diff(reference, logits, mask, head)
    report: dict[str, Any] = {
        "run": info.run_dir, "run_name": info.name, "kind": info.kind,
        "adapter": info.record.get("adapter"), "format": "merged" if merge else "adapter",
        "merged": merge and info.kind == "peft", "labels": labels, "pipeline_task": PIPELINE_TASK[head],
        "max_abs_logit_diff": diff, "atol": atol, "size_mb": _folder_mb(out),
    }
    report.update({"crf": CRF_EXPORT_NOTE} if crf else {})
    decoding = str(info.cfg.module.get("decoding", "argmax"))
    report.update({"decoding": DECODING_EXPORT_NOTE.format(decoding=decoding, run=info.run_dir)}
                  if decoding != "argmax" and not crf and head == "token_classification" else {})
    report.update(card_json(base))
    if head == "token_classification":
        report["aggregation_strategy"] = aggregation_strategy(info.locale)
    if diff > atol:
        raise ValueError(f"exported model differs from the trained one: max |logit diff| {diff:.2e} > {atol:.0e} "
                         f"(folder left at {out} for inspection)")
    if quantize == "int8":
        report["int8"] = _quantize_report(exported, info, out, batch, evaluate_quantized)
    with atomic_file(os.path.join(out, CARD)) as f:
        f.write(render(info, report, base))
    report["card"] = CARD
    with atomic_file(os.path.join(out, REPORT)) as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
    return report


def _reload(out: str, head: str) -> nn.Module:
    return _auto_class(head).from_pretrained(out, use_safetensors=True).eval()


def _reload_adapter(out: str, info: RunInfo) -> nn.Module:
    """The adapter folder loaded with plain peft onto the run's base, rebuilt from its config (the
    local copy of the public base; ``tiny_random`` drawn from the run's seed)."""
    import peft

    backbone = build_untrained(info, adapter=False).model
    return peft.PeftModel.from_pretrained(backbone, out).eval()


def _auto_class(head: str):
    from localize.models.backbones import HEADS

    return HEADS[head]


def _max_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, head: str) -> float:
    if head == "token_classification":
        return float((a - b).abs()[mask].max())
    return float((a - b).abs().max())


def _folder_mb(path: str) -> float:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs) / 2**20


def quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantisation of every ``nn.Linear`` (a copy; ``model`` is left as is)."""
    import copy

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch >= 2.10 flags the eager quantisation API as deprecated
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)


def save_quantized(q: nn.Module, path: str) -> None:
    """Write a ``quantize_int8`` model's quantised Linears as plain tensors (safetensors).

    Per Linear ``<name>``: ``<name>.weight`` (the int8 values), ``<name>.scale`` (float64),
    ``<name>.zero_point`` (int64), ``<name>.bias`` (float32, if any); the metadata's ``layout`` (JSON)
    gives each one's shape and quantisation scheme. Every other weight is the fp32 folder's.
    """
    from safetensors.torch import save
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    tensors: dict[str, torch.Tensor] = {}
    layout: dict[str, dict[str, Any]] = {}
    for name, m in q.named_modules():
        if not isinstance(m, DynamicLinear):
            continue
        w, bias = m.weight(), m.bias()
        per_channel = w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
        tensors[f"{name}.weight"] = w.int_repr().contiguous()
        tensors[f"{name}.scale"] = (w.q_per_channel_scales() if per_channel else
                                    torch.tensor([w.q_scale()], dtype=torch.float64)).contiguous()
        tensors[f"{name}.zero_point"] = (w.q_per_channel_zero_points() if per_channel else
                                         torch.tensor([w.q_zero_point()], dtype=torch.int64)).contiguous()
        if bias is not None:
            tensors[f"{name}.bias"] = bias.detach().contiguous()
        layout[name] = {"in_features": m.in_features, "out_features": m.out_features, "bias": bias is not None,
                        "per_channel_axis": int(w.q_per_channel_axis()) if per_channel else None}
    with atomic_file(path, "wb") as f:
        f.write(save(tensors, metadata={"format": QUANTIZED_FORMAT, "layout": json.dumps(layout)}))


def load_quantized(out: str) -> nn.Module:
    """Rebuild the int8 model of an export folder (``quantize=int8``): the fp32 folder
    (safetensors) with each Linear named in ``quantized_int8.safetensors`` replaced by a dynamic
    int8 Linear made from the stored tensors. Reads tensors and JSON only: nothing in the folder can
    make it run code.

    Raises:
        FileNotFoundError: no int8 export in ``out``.
        ValueError: an older pickled export (not read), or a file that is not this format / does
            not fit the folder's model.
    """
    from safetensors import safe_open
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    path = os.path.join(out, QUANTIZED_FILE)
    fix = f"re-export it: python -m localize.export run=<run dir> out={out} quantize=int8 overwrite=true"
    if not os.path.isfile(path):
        legacy = os.path.join(out, LEGACY_QUANTIZED_FILE)
        if os.path.exists(legacy):
            raise ValueError(f"{legacy} is a pickle written by an older localize.export; it is not loaded, since "
                             f"unpickling a file can run code: {fix}")
        raise FileNotFoundError(f"{path} not found: {out} was not exported with quantize=int8; {fix}")
    try:
        with open(os.path.join(out, REPORT)) as f:
            pipeline_task = json.load(f)["pipeline_task"]
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != QUANTIZED_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {QUANTIZED_FORMAT!r}")
            layout = json.loads(meta["layout"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # SafetensorError, a pickle renamed .safetensors, bad JSON, missing key
        raise ValueError(f"{path} is not a localize int8 export ({type(e).__name__}: {str(e)[:200]}): {fix}") from e
    head = "token_classification" if pipeline_task == "token-classification" else "sequence_classification"
    model = _auto_class(head).from_pretrained(out, use_safetensors=True).eval()
    modules = dict(model.named_modules())
    for name, spec in layout.items():
        linear = modules.get(name)
        if not isinstance(linear, nn.Linear) or (linear.in_features, linear.out_features) != (
                spec["in_features"], spec["out_features"]):
            raise ValueError(f"{path} quantises '{name}' ({spec['in_features']}→{spec['out_features']}), which is "
                             f"not such a Linear of the model in {out}: {fix}")
        ints, scale, zero = tensors[f"{name}.weight"], tensors[f"{name}.scale"], tensors[f"{name}.zero_point"]
        if spec["per_channel_axis"] is None:
            weight = torch._make_per_tensor_quantized_tensor(ints, float(scale[0]), int(zero[0]))
        else:
            weight = torch._make_per_channel_quantized_tensor(ints, scale, zero, int(spec["per_channel_axis"]))
        q = DynamicLinear(spec["in_features"], spec["out_features"], bias_=spec["bias"], dtype=torch.qint8)
        q.set_weight_bias(weight, tensors.get(f"{name}.bias"))
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, q)
    return model.eval()


def _state_mb(model: nn.Module) -> float:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes / 2**20


def _latency_ms(model: nn.Module, batch: dict[str, torch.Tensor], repeats: int = 5) -> float:
    """Median wall time of one forward pass over the sample batch, in ms."""
    times = []
    with torch.inference_mode():
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])  # warm-up
        for _ in range(repeats):
            t = time.perf_counter()
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            times.append(time.perf_counter() - t)
    return 1000 * sorted(times)[len(times) // 2]


def _quantize_report(model: nn.Module, info: RunInfo, out: str, batch: dict[str, torch.Tensor],
                     evaluate: bool) -> dict[str, Any]:
    q = quantize_int8(model)
    save_quantized(q, os.path.join(out, QUANTIZED_FILE))
    with torch.inference_mode():
        fp = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        qi = q(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    mask = batch["attention_mask"].bool()
    agree = (fp.argmax(-1) == qi.argmax(-1))[mask].float().mean() if fp.dim() == 3 else \
        (fp.argmax(-1) == qi.argmax(-1)).float().mean()
    report = {
        "fp32_mb": _state_mb(model), "int8_mb": _state_mb(q),
        "int8_file_mb": os.path.getsize(os.path.join(out, QUANTIZED_FILE)) / 2**20,
        "fp32_ms_per_batch": _latency_ms(model, batch), "int8_ms_per_batch": _latency_ms(q, batch),
        "latency_batch": list(batch["input_ids"].shape), "threads": torch.get_num_threads(),
        "argmax_agreement_on_samples": float(agree),
    }
    if evaluate:
        try:
            report["metrics"] = _test_metrics(info, {"fp32": model, "int8": q})
        except Exception as e:  # data unavailable here (hub dataset offline): sizes/latency still stand
            log.warning("int8 metric change not measured: %s", e)
            report["metrics_error"] = f"{type(e).__name__}: {e}"
    return report


def _test_metrics(info: RunInfo, models: dict[str, nn.Module]) -> dict[str, dict[str, float]]:
    """Each model scored on the run's own test split through its LightningModule's ``test_step``."""
    import pytorch_lightning as pl

    datamodule = build_datamodule(info)
    module = build_untrained(info, adapter=False)
    results = {}
    for name, model in models.items():
        module.model = model
        trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False)
        t = time.perf_counter()
        tested = trainer.test(module, datamodule=datamodule, verbose=False)
        scores = {k: float(v) for k, v in tested[0].items() if k.split("/")[-1] in
                  ("f1", "precision", "recall", "accuracy", "f1_macro", "loss")}
        scores["test_wall_s"] = time.perf_counter() - t
        results[name] = scores
    results["change"] = {k: results["int8"][k] - results["fp32"][k] for k in results["fp32"] if k in results["int8"]}
    return results


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="export")
def main(cfg: DictConfig) -> None:
    from localize.utils import quiet_libraries
    from localize.validate import check_config

    quiet_libraries()
    check_config(cfg)  # atol, quantize, overwrite: before the run is read
    report = export(cfg.run, cfg.out, quantize=cfg.get("quantize"), atol=float(cfg.atol),
                    overwrite=bool(cfg.overwrite), evaluate_quantized=bool(cfg.evaluate_quantized),
                    merge=cfg.get("merge", True), base_model_id=cfg.get("base_model_id"))
    print(json.dumps(report, indent=2, ensure_ascii=False))


def run() -> None:
    """The ``localize-export`` console script (``python -m localize.export`` is the same)."""
    from localize.cli import cli

    cli(main)


if __name__ == "__main__":
    run()
