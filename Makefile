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

.PHONY: install run test test-slow test-all clean-results all-methods ablation cifar10-cpu newsgroups20-cpu report

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

# Sweeps behind the README's tables (results land in results/runs.csv; `make report` summarises them).
METHODS := $(shell ls unlearn/conf/method | sed 's/\.yaml$$//' | paste -sd, -)
SEEDS ?= 0,1,2

all-methods: $(STAMP)  ## every method x class-wise, random on the default data
	$(PY) run.py -m method=$(METHODS) paradigm=classwise,random seed=$(SEEDS) table=digits_methods

ablation: $(STAMP)  ## paper Table 6: gradient-mixed x NLS/PLS ablation, random forgetting
	$(PY) run.py -m experiment=ablation seed=$(SEEDS)

cifar10-cpu: $(STAMP)  ## CPU-scale CIFAR-10 (needs ../shared/data or UNLEARN_SHARED_DATA)
	$(PY) run.py -m experiment=cifar10_classwise method=$(METHODS) seed=$(SEEDS)
	$(PY) run.py -m experiment=cifar10_random method=$(METHODS) seed=$(SEEDS)
	$(PY) run.py -m experiment=cifar10_group method=$(METHODS) seed=$(SEEDS)

newsgroups20-cpu: $(STAMP)  ## CPU-scale 20 Newsgroups (needs ../shared/data or UNLEARN_SHARED_DATA)
	$(PY) run.py -m experiment=newsgroups20_classwise method=$(METHODS) seed=$(SEEDS)
	$(PY) run.py -m experiment=newsgroups20_random method=$(METHODS) seed=$(SEEDS)
	$(PY) run.py -m experiment=newsgroups20_group method=$(METHODS) seed=$(SEEDS)

report: $(STAMP)  ## mean ± std over seeds of results/runs.csv, one table per (table, dataset, paradigm)
	$(PY) scripts/collect.py results/runs.csv --long results/long.csv --markdown

clean-results:
	rm -rf results/runs results/multirun results/cache results/wandb results/runs.csv

# W&B dashboards: one Report per paper table from the synced runs (needs `wandb login`, the network and
# `pip install -e '.[dashboard]'`); upload offline runs first with `wandb sync results/wandb/offline-run-*`.
TABLE ?= table1
ENTITY ?= $(WANDB_ENTITY)
PROJECT ?= unlearn
.PHONY: dashboard
dashboard: $(STAMP)  ## make dashboard TABLE=table2 ENTITY=<W&B user or team> [PROJECT=unlearn]
	@test -n "$(ENTITY)" || { echo "set ENTITY=<W&B user or team> (or WANDB_ENTITY)"; exit 2; }
	WANDB_MODE=online $(PY) scripts/wandb_dashboard.py --entity $(ENTITY) --project $(PROJECT) --table $(TABLE)
