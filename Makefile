# Two commands for a fresh machine: `make demo` (main job against the emulator) and `make test`.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
# Lowest supported Airflow minor (pyproject: apache-airflow>=3.1,<4), tested by `make test-lowest`.
LOWEST_AIRFLOW_VERSION ?= 3.1.8
# What Airflow 3.1's constraints would hold back: cryptography 51 made MultiFernet a Rust class, and 3.1's
# get_fernet() sets an attribute on it (AttributeError: every connection with a password fails to load).
LOWEST_PINS ?= 'cryptography<51'
PINS ?=
PYTEST_ARGS ?=
# One pytest worker per core (at most 4: each worker migrates its own SQLite DB and runs its own emulator);
# worksteal, because a handful of Airflow-running tests take a minute each. XDIST= runs in one process.
XDIST ?= -n auto --maxprocesses=4 --dist worksteal
# ruff and mypy run once, on the latest Airflow (mypy checks against the Airflow it finds: on 3.1 the 3.2+
# import branches do not resolve). test-lowest runs the suite only.
LINT ?= lint
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)

.PHONY: setup setup-lowest setup-cluster demo test test-unit test-lowest test-matrix lint bench dist clean e2e-cluster

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check 'pip>=25.1'  # --group (PEP 735 dependency groups)
	$(PY) -m pip install -q --disable-pip-version-check -e . --group dev 'apache-airflow==$(AIRFLOW_VERSION)' $(PINS)
	rm -f $(VENV)/.installed-* && touch $@

demo: setup
	$(PY) scripts/demo.py

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: setup $(LINT)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# The inner loop: the unit tier only (no Airflow process, no emulator, no real sleeps; seconds, not minutes).
test-unit: setup
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

# The suite on the lowest supported Airflow, minus the scheduler e2e run, the 3.2+ UI form test and two
# slow tests of pure token-cache behaviour (CI time: both versions together stay under 20 minutes).
# The gateway dialects are version-agnostic: the lowest version talks to the default one only.
test-lowest:
	SCHNEIDER_EMULATOR_PROFILES=default $(MAKE) test LINT= VENV=.venv-lowest AIRFLOW_VERSION=$(LOWEST_AIRFLOW_VERSION) \
		PINS="$(LOWEST_PINS)" \
		PYTEST_ARGS='-m "not e2e and not ui and not latest_only"'

setup-lowest:
	$(MAKE) setup VENV=.venv-lowest AIRFLOW_VERSION=$(LOWEST_AIRFLOW_VERSION) PINS="$(LOWEST_PINS)"

test-matrix: test test-lowest

# The cluster end-to-end run (docs/cluster.md#running-on-a-cluster): CeleryExecutor on PostgreSQL and Redis
# (Debian packages, installed if missing), three worker hosts, outputs on S3 (moto). Own venv: .venv-cluster.
CLUSTER_VENV ?= .venv-cluster
CLUSTER_STAMP := $(CLUSTER_VENV)/.installed-$(AIRFLOW_VERSION)
CLUSTER_ARGS ?=

$(CLUSTER_STAMP): pyproject.toml
	$(PYTHON) -m venv $(CLUSTER_VENV)
	$(CLUSTER_VENV)/bin/python -m pip install -q --disable-pip-version-check 'pip>=25.1'
	$(CLUSTER_VENV)/bin/python -m pip install -q --disable-pip-version-check -e . --group cluster \
		'apache-airflow==$(AIRFLOW_VERSION)'
	rm -f $(CLUSTER_VENV)/.installed-* && touch $@

setup-cluster: $(CLUSTER_STAMP)

e2e-cluster: $(CLUSTER_STAMP)
	$(CLUSTER_VENV)/bin/python scripts/e2e_cluster.py $(CLUSTER_ARGS)

bench: setup
	$(PY) benchmarks/token_reuse.py
	$(PY) benchmarks/pull_throughput.py
	$(PY) benchmarks/output_formats.py

# sdist + wheel into dist/, checked as PyPI would (twine check --strict).
dist: setup
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*

clean:
	rm -rf $(VENV) .venv-lowest $(CLUSTER_VENV) .pytest_cache build dist *.egg-info
