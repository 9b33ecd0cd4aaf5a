# Two commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   := .data
export BASTION_DEMO_SECRET ?= dev-only-demo-secret-change-me-0123456789

.PHONY: run test lint check bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	@$(BIN)/python -m proxy check -c config.yaml
	@mkdir -p $(DATA)
	@bash scripts/run-demo.sh

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy proxy
	$(BIN)/lint-imports
	$(BIN)/bastion test rules
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy proxy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(DATA) *.egg-info
