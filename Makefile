# Two commands on a fresh machine: `make book` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
PROFILE ?= quick
export PATH := $(BIN):$(PATH)
# Offline machines of this project keep the verified archives in ../shared/data.
ifeq ($(origin GEOVAE_DATA), undefined)
  ifneq ($(wildcard ../shared/data/MNIST),)
    export GEOVAE_DATA := $(abspath ../shared/data)
  endif
endif

.PHONY: env book test strip bench clean

env: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name geovae --display-name "Python 3 (geovae)" > /dev/null
	touch $@

book: env
	$(BIN)/python -m geovae_core.runner --profile $(PROFILE)
	rm -rf _build/html _build/.doctrees
	$(BIN)/jupyter-book build . --warningiserror --keep-going
	@echo "The book is in _build/html; open _build/html/index.html"

# pytest's exit code 5 (no test collected) is a failure here, as every other non-zero code.
test: env
	$(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing"; fi; exit $$status

strip: env
	$(BIN)/python -m geovae_core.runner --store

bench: env
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_geometry.py

clean:
	rm -rf _build executed results
