# Two commands matter: `make train` (the main job) and `make test` (the default test set).
# Both create .venv and install what they need. A GPU user changes TORCH_SPEC, e.g.
#   make TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" install
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
ARGS ?=

.PHONY: install train test test-slow sync sweep report clean

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

sync:
	$(BIN)/wandb sync --sync-all logs/wandb 2>/dev/null || $(BIN)/wandb sync logs/wandb/offline-run-*

report: install
	$(BIN)/python -m localize.report logs/runs $(ARGS)

clean:
	rm -rf $(VENV) logs outputs .pytest_cache
