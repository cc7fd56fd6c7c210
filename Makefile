# vitgan-lite: two commands for a new user.
#   make lab    set everything up, then open the course in JupyterLab on notebooks/
#   make test   set everything up, then run the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Heavy notebook cells shrink to a few real steps under the quick switch (they still run).
TEST_ENV := VITGAN_LITE_QUICK=1 PYDEVD_DISABLE_FILE_VALIDATION=1
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tools/nbval_sanitize.cfg --nbval-cell-timeout=600
JOBS ?= 2

.PHONY: setup lab test unit notebooks-test lint exercises execute clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "vitgan-lite needs Python 3.10 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -c constraints.txt -e ".[dev,metrics]"
	touch $(STAMP)

setup: $(STAMP)

lab: setup
	$(BIN)/jupyter lab notebooks/

lint: setup
	$(BIN)/ruff check vitgan_lite tests tools benchmarks notebooks solutions

exercises: setup
	$(BIN)/python tools/make_exercises.py

# The README's test command: lint, exercises up to date, unit + checker tests, nbval over the lessons.
test: setup
	$(BIN)/ruff check vitgan_lite tests tools benchmarks notebooks solutions
	$(BIN)/python tools/make_exercises.py --check
	$(TEST_ENV) $(BIN)/python -m pytest -n $(JOBS) --dist loadfile tests notebooks solutions $(NBVAL) --durations=15

unit: setup
	$(TEST_ENV) $(BIN)/python -m pytest -n $(JOBS) tests

notebooks-test: setup
	$(TEST_ENV) $(BIN)/python -m pytest -n $(JOBS) --dist loadfile notebooks solutions $(NBVAL)

# Refresh committed outputs after editing lessons (full size: quick mode off).
execute: setup
	$(BIN)/python tools/execute_notebooks.py notebooks/*.ipynb solutions/*.ipynb
	$(BIN)/python tools/make_exercises.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
