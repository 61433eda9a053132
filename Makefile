# `make demo` and `make test` work on a fresh clone: each creates .venv and installs the project first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test gate layouts clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The main job on built-in defaults: a ResNet-50 with random non-trivial weights saved by torch,
# converted to .pdparams, loaded by Paddle, both run on the same batch; files kept in demo-output/.
demo: $(STAMP)
	$(BIN)/weightport verify resnet50 --floor --keep demo-output

# The linter (rules in pyproject.toml), the unit tests, then the parity gate over every registered
# model, eval and training parity (as a CI job would run it).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory gate

gate: $(STAMP)
	mkdir -p build
	$(BIN)/weightport verify --all --train --batch-size 2 --junit build/verify-junit.xml

layouts: $(STAMP)
	$(BIN)/python scripts/update_layouts.py

clean:
	rm -rf $(VENV) build demo-output .pytest_cache
