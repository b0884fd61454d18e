# Two commands for a fresh machine: `make demo` (main job against the emulator) and `make test`.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]' 'apache-airflow==$(AIRFLOW_VERSION)'
	rm -f $(VENV)/.installed-* && touch $@

demo: setup
	$(PY) scripts/demo.py

lint: setup
	$(PY) -m ruff check .

test: setup lint
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/token_reuse.py
	$(PY) benchmarks/pull_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
