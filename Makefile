# Everything bootstraps from nothing but python3: a .venv, the project, its dependencies.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test demo lint install clean bench up

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch pinned: 2.13.0 is the CPU build this machine keeps locally.
	$(PY) -m pip install -q "torch==2.13.0"
	# torch named again: the integrations' frameworks must resolve against 2.13.0, never upgrade it.
	$(PY) -m pip install -q -e ".[dev]" "torch==2.13.0"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) lint
	$(PY) -m pytest

demo: $(STAMP)
	$(VENV)/bin/epochstream demo

up: $(STAMP)
	$(VENV)/bin/epochstream up

bench: $(STAMP)
	$(PY) bench/producer_overhead.py
	$(PY) bench/ingest.py
	$(PY) bench/drain_cost.py
	$(PY) bench/turn_cost.py
	$(PY) bench/spread.py --find 1500,2500,3500
	$(PY) bench/long_run.py
	$(PY) bench/api.py
	$(PY) bench/people_stack.py
	$(PY) bench/trends.py
	$(PY) bench/cli_startup.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
