# Two commands matter: `make train` (the main job) and `make test` (the default test set).
# Both create .venv and install what they need. A GPU user changes TORCH_SPEC, e.g.
#   make TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" install
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
ARGS ?=

.PHONY: install train test test-slow sync sweep report notebook clean experiment-full-vs-peft experiment-full-vs-peft-cv experiment-lora-search experiment-continual experiment-audit experiment-active-learning bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The constraints file pins whatever torch got installed, so later installs can't upgrade it.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/constraints.txt
	$(BIN)/pip install -q -c $(VENV)/constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

train: install
	$(BIN)/python -m localize.train +locale=ja task=ner $(ARGS)

test: install
	$(BIN)/python -m pytest -q $(ARGS)

test-slow: install
	$(BIN)/python -m pytest -q -m slow $(ARGS)

# Upload offline W&B runs (needs WANDB_API_KEY); each run dir keeps its own wandb/ folder.
sync:
	find $${LOCALIZE_LOG_DIR:-logs} -type d -name 'offline-run-*' -prune -exec $(BIN)/wandb sync {} \;

# Full vs PEFT on the embedded Japanese NER data, 3 seeds, then the report (experiments/full_vs_peft).
experiment-full-vs-peft: install
	bash experiments/full_vs_peft/run.sh

# The same comparison as 5-fold cross-validation (each of the 500 sentences tested once; ≈ 1 h 35 min).
experiment-full-vs-peft-cv: install
	bash experiments/full_vs_peft_cv/run.sh

# Class-incremental ja NER, one sequence per continual strategy (experiments/continual/README.md).
experiment-continual: install
	bash experiments/continual/run.sh

# Label audit of the embedded ja NER corpus, with 10% injected flips and as shipped (experiments/audit).
experiment-audit: install
	bash experiments/audit/run.sh

# Simulated active learning on the ja NER pool: entropy vs margin vs random (experiments/active_learning).
experiment-active-learning: install
	$(BIN)/python experiments/active_learning/simulate.py --seeds 1 2 3

# Offline Optuna search for LoRA (same space as the W&B sweep), then its best parameters on seeds 1-3.
experiment-lora-search: install
	bash experiments/lora_search/run.sh

# localize vs HF Trainer vs raw loop on Japanese NER (full + LoRA); rewrites benchmarks/RESULTS.md.
bench: install
	$(BIN)/python benchmarks/ner_bench.py $(ARGS)

report: install
	$(BIN)/python -m localize.report logs $(ARGS)

# The analysis notebook as Jupyter runs it (papermill): logs/report/notebook/compare_methods.{ipynb,html}.
# ARGS: --log-dir DIR, --metric test/f1, --reference lora.
notebook: install
	$(BIN)/pip install -q -c $(VENV)/constraints.txt -e ".[notebook]"
	$(BIN)/python -m localize.report.notebook $(ARGS)

clean:
	rm -rf $(VENV) logs outputs .pytest_cache

# W&B sweep (online): creates the sweep from the spec and starts an agent.
SWEEP ?= conf/sweep/ner_lora.yaml
sweep: install
	$(BIN)/python -m localize.sweep $(SWEEP) $(ARGS)
