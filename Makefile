# `make demo` runs the main job end to end; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-fast lint demo install package-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[test,lint]"
	touch $(STAMP)

install: $(STAMP)

# everything, Airflow processes and the generated schedules included
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the quick loop: everything but the tests marked slow
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check hydroserver_provider tests bench dags
	$(BIN)/mypy

# the wheel and sdist, installed into a clean virtualenv and smoke-tested
package-check: $(STAMP)
	$(BIN)/python .ci/package_check.py

demo: $(STAMP)
	$(BIN)/python -m hydroserver_provider.demo

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
