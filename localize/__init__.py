"""localize: localize pretrained language models — full fine-tuning vs PEFT, tracked and compared."""
import secrets

from omegaconf import OmegaConf

# ${run_id:}: 6 random hex digits that make run dir names unique (two runs of one name started in
# the same second got one dir). Cached per config like Hydra's ${now:}: a multirun's jobs, whose
# configs copy the launcher's cache, share one sweep dir.
if not OmegaConf.has_resolver("run_id"):
    OmegaConf.register_new_resolver("run_id", lambda: secrets.token_hex(3), use_cache=True)

# ${coalesce:a,b}: the first value that is not null (``oc.select`` only falls back on a missing key).
if not OmegaConf.has_resolver("coalesce"):
    OmegaConf.register_new_resolver("coalesce", lambda *values: next((v for v in values if v is not None), None))


def _search_space(name: str, backend: str):
    from localize.sweep import search_space_params

    return search_space_params(name, backend)


# ${search_space:ner_lora,optuna}: conf/search_space/ner_lora.yaml as Optuna sweeper params, so the
# hparams_search files and the W&B sweeps read one definition (localize.sweep).
if not OmegaConf.has_resolver("search_space"):
    OmegaConf.register_new_resolver("search_space", _search_space)


def _auto_precision(accelerator: str = "auto") -> str:
    from localize.hardware import auto_precision

    return auto_precision(accelerator)


# ${auto_precision:${trainer.accelerator}}: bf16-mixed where the matrix units do bf16 natively (localize.hardware).
if not OmegaConf.has_resolver("auto_precision"):
    OmegaConf.register_new_resolver("auto_precision", _auto_precision)

# ${epoch_budget:${trainer.max_steps},<epochs>}: the task's epochs, or unlimited (-1) under a step budget.
if not OmegaConf.has_resolver("epoch_budget"):
    OmegaConf.register_new_resolver("epoch_budget", lambda steps, epochs: -1 if steps is not None and int(steps) > 0
                                    else epochs)


def _run_labels(run_dir: str | None):
    from localize.tracking.record import read_record

    record = read_record(str(run_dir)) if run_dir else None
    return list(record.get("labels") or []) or None if record else None


# ${run_labels:${init_from}}: the label set a run recorded (a run that starts from it keeps those
# labels first, in their order, so its grown head keeps the old rows); null without a run.
if not OmegaConf.has_resolver("run_labels"):
    OmegaConf.register_new_resolver("run_labels", _run_labels)
