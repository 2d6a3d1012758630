# Two commands for a fresh clone: `make run` (default experiment) and `make test` (test suite); `make` lists all.
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

.PHONY: install run test test-slow test-all clean-results all-methods ablation report docs

.DEFAULT_GOAL := help
help:  ## this list (targets with a double-hash comment)
	@awk 'BEGIN {FS = ":[^#]*## "} /^([a-zA-Z0-9_%-]+|\$$\(TABLES\)):.*## / {name = ($$1 == "$$(TABLES)") ? "table1..table14" : $$1; printf "  %-18s %s\n", name, $$2}' $(MAKEFILE_LIST)

install: $(STAMP)  ## the venv with unlearn[dev] at the tested versions (constraints.txt)

# pyproject.toml holds ranges; constraints.txt the exact versions the tests ran with (`make constraints`).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# torch CPU threads of `make run`: CPU results are bit-identical for a fixed seed and thread count
THREADS ?= 1
run: $(STAMP)  ## the default experiment: digits, ResNet-18, class-wise, UGradSL (THREADS=1, as in the README)
	$(PY) run.py threads=$(THREADS)

test: $(STAMP)  ## the default suite (minutes on 2 CPU cores), the mutation check of every method's tests, the strict docs build
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder  # two workers (the tests are single-threaded); a file stays on one worker, which composes its configs once; the longest files first (tests/conftest.py)
	OMP_NUM_THREADS=1 $(PY) scripts/mutation_check.py
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet --site-dir build/site

docs: $(STAMP)  ## the documentation site (docs/, mkdocs.yml) built strictly into build/site; `mkdocs serve` previews it
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir build/site

test-slow: $(STAMP)  ## slow and shared-data tests, run deliberately
	$(PY) -m pytest -q -m "slow"

test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

# Sweeps behind the README's tables (results land in results/runs.csv; `make report` summarises them).
METHODS := $(shell ls conf/method | sed 's/\.yaml$$//' | paste -sd, -)
SEEDS ?= 0,1,2

all-methods: $(STAMP)  ## every method x class-wise, random on the default data
	$(PY) run.py -m method=$(METHODS) paradigm=classwise,random seed=$(SEEDS) table=digits_methods

# The paper's tables (conf/tables/<table>.yaml): each runs its sweep (only jobs not yet in the results
# CSV from this code) and prints ours beside the paper's numbers to results/tables/<table>_<scale>.{md,tex,csv}.
# SCALE=paper is the paper's recipe (the default when CUDA is present), SCALE=cpu what 2 CPU cores do in minutes;
# ARGS passes Hydra overrides to every job, e.g. ARGS="hydra/launcher=local" for parallel local jobs.
# VARIANT=arxiv: UGradSL/UGradSL+ with the adaptive per-sample alpha, printed beside arXiv's numbers
VARIANT ?= iclr
SCALE ?= $(shell $(PY) -c "import torch; print('paper' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)
TABLES := table1 table2 table3 table4 table6 table7 table8 table9 table10 table11 table12 table14
.PHONY: tables $(TABLES)
$(TABLES): $(STAMP)  ## make table1 [SCALE=cpu|paper] [SEEDS=0,1,2] [VARIANT=iclr|arxiv] [ARGS="..."]: one paper table
	$(PY) -m unlearn.tables run $@ --scale $(SCALE) --seeds $(SEEDS) --variant $(VARIANT) -- $(ARGS)

tables: $(TABLES)  ## every paper table above, one after the other

ablation: table6  ## paper Table 6 (gradient-mixed x NLS/PLS), an alias

report: $(STAMP)  ## mean ± std over seeds of results/runs.csv, one table per (table, dataset, paradigm)
	$(VENV)/bin/unlearn report results/runs.csv --long results/long.csv --markdown

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
	WANDB_MODE=online $(VENV)/bin/unlearn dashboard --entity $(ENTITY) --project $(PROJECT) --table $(TABLE)

# Scaling out (README "Scaling out"). Reference models first: the original and Retrain models of a sweep in
# parallel jobs, so the method jobs that follow only load them. REFS_ARGS = the sweep's data / paradigm / seed
# axes (no method axis: the references do not depend on it); LAUNCHER = a conf/hydra/launcher/ preset.
REFS_ARGS ?= paradigm=classwise,random seed=$(SEEDS)
LAUNCHER ?= local
.PHONY: help references constraints bench bench-decode bench-tier-precision
references: $(STAMP)  ## make references TABLE=table1 [SCALE=paper] [SEEDS=0,1,2] [ARGS=...]: a table's references; or REFS_ARGS="..."
ifeq ($(origin TABLE),command line)
	$(PY) -m unlearn.tables.references $(TABLE) --scale $(SCALE) --seeds $(SEEDS) -- hydra/launcher=$(LAUNCHER) $(ARGS)
else
	$(PY) run.py -m stage=references hydra/launcher=$(LAUNCHER) $(REFS_ARGS)
endif

# A whole table as one job array (unlearn/tables/submit.py): a job per reference model, then every block x row x
# seed not yet done; time limits and lock timeouts derived from the paper's estimate; returns at once, and
# `python -m unlearn.tables print TABLE --scale SCALE` collects later. SUBMIT_LAUNCHER=local_submitit tries it here.
SUBMIT_LAUNCHER ?= slurm
.PHONY: submit
submit: $(STAMP)  ## make submit TABLE=table1 [SCALE=paper] [SEEDS=0,1,2] [ARGS="hydra.launcher.partition=gpu"]: one job array
	$(PY) -m unlearn.tables.submit $(TABLE) --scale $(SCALE) --seeds $(SEEDS) -- hydra/launcher=$(SUBMIT_LAUNCHER) $(ARGS)

constraints:  ## rewrite constraints.txt from the installed dev environment (after changing dependencies)
	$(PY) scripts/constraints.py > constraints.txt.new && mv constraints.txt.new constraints.txt

bench: $(STAMP)  ## images/s of the bare loop, GA, UGradSL and the public code's loop (needs ../shared/data)
	OMP_NUM_THREADS=1 $(PY) scripts/bench_loops.py

bench-decode: $(STAMP)  ## images/s per core of each ImageNet decoding path and the CPUs a GPU job needs
	OMP_NUM_THREADS=1 $(PY) scripts/bench_decode.py

bench-tier-precision: $(STAMP)  ## the CIFAR-10 tier's training step in bf16 and fp32 on this CPU (bf16 is emulated without avx512_bf16)
	OMP_NUM_THREADS=1 $(PY) scripts/bench_tier_precision.py

# Issue 9: figures, the extra attack table and the "(R)" selection toward Retrain.
# Figures (conf/figures/<fig>.yaml): each runs its sweep at SCALE (only jobs not yet in the results CSV
# from this code, sharing the tables' runs), then draws results/figures/<fig>.{png,pdf,csv} from saved results
# (logged to W&B unless WANDB_MODE=disabled). FIG_SEEDS for the figures read from table runs, SWEEP_SEEDS for the
# reviewers' sweeps (fewer, to stay within an hour cold on 2 CPU cores).
FIG_SEEDS ?= 0,1,2
SWEEP_SEEDS ?= 0,1
FIGURES := fig1 fig3 fig4 figloss figlandscape figforget figgrid
.PHONY: figures $(FIGURES) fig5 table5 table13 tune
FIG = $(PY) -m unlearn.figures run $@ --scale $(SCALE)
fig1: $(STAMP)  ## MIA and TA vs RTE, all methods (table 8's CIFAR-10 runs) [FIG_SEEDS=0,1,2] [ARGS="..."]
	$(FIG) --seeds $(FIG_SEEDS) -- $(ARGS)
fig3: $(STAMP)  ## UGradSL+ UA/MIA/RA/TA vs smooth rate alpha, Retrain dashed (6 alphas)
	$(FIG) --seeds $(FIG_SEEDS) -- $(ARGS)
fig4: $(STAMP)  ## confusion matrices of D_f and the test set (original, UGradSL+, Retrain)
	$(FIG) --seeds $(FIG_SEEDS) -- $(ARGS)
figloss: $(STAMP)  ## per-sample loss histograms, D_f vs test set, random and class-wise (arXiv Fig. 7)
	$(FIG) --seeds $(FIG_SEEDS) -- $(ARGS)
figlandscape: $(STAMP)  ## loss landscape of the Retrain model (arXiv Fig. 6), filter-normalised directions
	$(FIG) --seeds $(FIG_SEEDS) -- $(ARGS)
figforget: $(STAMP)  ## reviewers: forget-set size 1%-50%, per method [SWEEP_SEEDS=0,1]
	$(FIG) --seeds $(SWEEP_SEEDS) -- $(ARGS)
figgrid: $(STAMP)  ## reviewers: p x alpha heat maps of UGradSL and UGradSL+ [SWEEP_SEEDS=0,1]
	$(FIG) --seeds $(SWEEP_SEEDS) -- $(ARGS)
figures: $(FIGURES)  ## every figure above
fig5:  ## not drawn: the paper does not define <a-b, c-b> fully (README, "Figure 5")
	@echo "Figure 5 (<a-b, c-b> on CelebA) is not drawn: the paper leaves the parameter point, the Hessian, the"
	@echo "parameters and what the distribution ranges over undefined. See README, section Figures, 'Figure 5'."

table5: $(STAMP)  ## arXiv Table 5 (additional MIA, CIFAR-10 class-wise + random) [SCALE=cpu] [SEEDS=0,1,2]
	$(PY) -m unlearn.tables run table5 --scale $(SCALE) --seeds $(SEEDS) -- $(ARGS)

# "(R)": `make tune METHOD=ga TABLE=table13` runs an Optuna study per block of the table (hparams_search=<METHOD>,
# avg_gap on the validation split, never the test set) and writes the best values as an "(R)" row into
# conf/tables/selected/<TABLE>.yaml (the preset reads it, never edited). TRIALS per process; several processes
# with the same arguments and STORAGE share one study. `make table13` selects every method of arXiv Table 13 (one target select13-<method> each, so
# `make -j2 table13 ARGS=threads=1` runs two selections side by side), then runs the table.
TRIALS ?= 12
STORAGE ?= sqlite:///$(CURDIR)/results/optuna.db
R_METHODS ?= ft ga iu rl be bs l1_sparse ugradsl ugradsl_plus
tune: $(STAMP)  ## make tune METHOD=ga TABLE=table13 [BLOCKS=..]: an (R) row; without TABLE, your data: ARGS="dataset=..."
	@test -n "$(METHOD)" || { echo "set METHOD=<method> [TABLE=<table>], e.g. make tune METHOD=ga TABLE=table13, or make tune METHOD=ugradsl ARGS='dataset=imagefolder dataset.root=/data/x'"; exit 2; }
ifeq ($(origin TABLE),command line)
	$(PY) -m unlearn.tables.select $(METHOD) $(TABLE) --scale $(SCALE) --trials $(TRIALS) --storage $(STORAGE) \
		$(if $(BLOCKS),--blocks "$(BLOCKS)") -- $(ARGS)
else
	$(PY) -m unlearn.tune method=$(METHOD) $(ARGS) --trials $(TRIALS) --storage $(STORAGE) $(if $(MINUTES),--minutes $(MINUTES))
endif
SELECT13 := $(addprefix select13-,$(R_METHODS))
.PHONY: $(SELECT13)
$(SELECT13): select13-%: $(STAMP)
	$(MAKE) --no-print-directory tune METHOD=$* TABLE=table13
table13: $(SELECT13)  ## arXiv Table 13: select every method toward Retrain (make tune), then run the table [make -j2]
	$(PY) -m unlearn.tables run table13 --scale $(SCALE) --seeds $(SEEDS) -- $(ARGS)
