# Two commands for a fresh clone: `make run` (default experiment) and `make test` (test suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Nothing below touches the network beyond the package registries.
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: install run test test-slow test-all clean-results

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## the default experiment: digits, ResNet-18, class-wise, UGradSL
	$(PY) run.py

test: $(STAMP)  ## the default suite (minutes on 2 CPU cores)
	$(PY) -m pytest -q

test-slow: $(STAMP)  ## slow and shared-data tests, run deliberately
	$(PY) -m pytest -q -m "slow"

test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

clean-results:
	rm -rf results/runs results/multirun results/cache results/wandb results/runs.csv
