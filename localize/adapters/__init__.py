"""The adapter axis at run time: method-specific callbacks (``callbacks.py``) and multi-adapter
serving (``bank.py``). Applying a peft config to a backbone is part of building the model
(``localize.models.adapt.apply_adapter``), so ``localize.models`` never imports this package."""
from localize.models.adapt import apply_adapter  # noqa: F401 (the adapter axis's entry point)
