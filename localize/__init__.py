"""localize: localize pretrained language models — full fine-tuning vs PEFT, tracked and compared."""
from omegaconf import OmegaConf

# ${coalesce:a,b}: the first value that is not null (``oc.select`` only falls back on a missing key).
if not OmegaConf.has_resolver("coalesce"):
    OmegaConf.register_new_resolver("coalesce", lambda *values: next((v for v in values if v is not None), None))
