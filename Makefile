# Three commands on a fresh machine: `make book`, `make test` and `make lab` (see README.md).
# Paths may hold spaces (a clone at "~/my papers/geovae"): recipes name the environment's tools by
# the relative $(BIN), run from the checkout, and quote any absolute path.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= quick
# make book JOBS=1: one chapter at a time (the runner executes two at once where there are 2+ cores,
# the longest first, the CPU's threads divided between them).
JOBS ?=
export PATH := $(CURDIR)/$(BIN):$(PATH)
# Offline machines of this project keep the verified archives in ../shared/data.
ifeq ($(origin GEOVAE_DATA), undefined)
  ifneq ($(wildcard ../shared/data/MNIST),)
    export GEOVAE_DATA := $(abspath ../shared/data)
  endif
endif

.PHONY: env book test check lint lab strip parameters bench mutation clean

# The environment's kernels log at ERROR, not WARNING: a kernel that papermill (by hand) or
# JupyterLab starts listens on local TCP, and ipykernel then prints at every start that its traffic
# is not encrypted. The runner's kernels use IPC sockets and never print it.
KERNEL_CONFIG := $(VENV)/etc/ipython/ipython_kernel_config.json

env: $(VENV)/.installed $(KERNEL_CONFIG)

$(KERNEL_CONFIG):
	mkdir -p $(@D)
	echo '{"IPKernelApp": {"log_level": "ERROR"}}' > $@

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || "$(PYTHON)" -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name geovae --display-name "Python 3 (geovae)" > /dev/null
	touch $@

book: env
	$(BIN)/python -m geovae_core.runner --profile $(PROFILE) $(if $(JOBS),--jobs $(JOBS))
	rm -rf _build/html _build/.doctrees
	$(BIN)/jupyter-book build . --warningiserror --keep-going
	@echo "The book is in _build/html; open _build/html/index.html"

# make test: the linter, then one pytest session: the unit tests, nbval over every notebook
# (profile smoke), and the book as readers meet it: every page executed by the runner (smoke),
# built with Sphinx warnings as errors and opened in headless Chromium (tests/test_book_in_browser.py,
# after tools/install-browser.sh). pytest prints the time of each part and the pages, images and
# claim rows it checked.
# pytest's exit code 5 (no test collected) is a failure here, as every other non-zero code.
test: env lint
	tools/install-browser.sh
	@started=$$(date +%s); $(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing"; fi; \
	echo "make test: pytest took $$(( $$(date +%s) - started )) s"; exit $$status

# Before every commit: the linter and the fast tests (no kernel, notebook, browser, cluster or
# benchmark; under 2 minutes on 2 cores).
check: env lint
	$(BIN)/python -m pytest -m "not slow" -q

# One formatter and linter (configured in pyproject.toml); `ruff format .` and `ruff check --fix .` mend.
lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# JupyterLab on the project's kernel (geovae) and data, opened on notebooks/; LAB_ARGS="--no-browser --port 8899"
# for more. As root (a container), Jupyter refuses to start without --allow-root.
LAB_ARGS ?=
lab: env
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks \
	  --MappingKernelManager.default_kernel_name=geovae $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

strip: env
	$(BIN)/python -m geovae_core.runner --store

# Only the chapters' parameters cells, rewritten from their settings (seconds; executes nothing).
parameters: env
	$(BIN)/python -m geovae_core.runner --annotate

# About 8 minutes on an idle 2-core CPU (7.4 min measured); the timings mean little while other work runs.
bench: env
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_conv.py
	$(BIN)/python benchmarks/bench_geometry.py

# Mutation testing (not part of make test or CI; an hour or more on 2 cores): mutmut (configured in
# pyproject.toml) mutates losses, models, geometry, metrics, judges, criteria, verdicts and data in a copy of
# this checkout under _build/mutation, runs the fast tests that cover each mutant, one thread, at
# low priority, then prints the share of mutants killed per module. Results are kept there: a later
# run tests only new or changed mutants; MUTANTS="geovae_core.losses.x_kl*" reruns the ones named.
MUTATION_DIR := _build/mutation
MUTATION_JOBS ?= 1
MUTANTS ?=
mutation: env
	mkdir -p $(MUTATION_DIR)
	git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C $(MUTATION_DIR)
	git describe --always --dirty > $(MUTATION_DIR)/SOURCE
	cd $(MUTATION_DIR) && OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 19 "$(CURDIR)/$(BIN)/mutmut" run --max-children $(MUTATION_JOBS) $(MUTANTS)
	cd $(MUTATION_DIR) && "$(CURDIR)/$(BIN)/python" tests/mutation_report.py

clean:
	rm -rf _build executed results
