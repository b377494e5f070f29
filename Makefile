# Heimdall — `make help` lists the targets.
# Python 3.11, 3.12 or 3.13 (make demo PYTHON=python3.13)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,train]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install Heimdall with its test and training tools (CPU torch)

# the demo installs only what it runs: no test tools, no torch (the train extra)
$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP) ## install Heimdall alone (no torch), run the embedded pipeline on the simulated seed network for 60 s, print the summary
	$(BIN)/heimdall up --duration 60

test: $(STAMP) ## run the whole test suite (unit, integration against the real embedded broker and chDB, end-to-end)
	$(BIN)/python -m pytest

test-unit: $(STAMP) ## run only the unit tests (no broker, no database)
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy

schemas: $(STAMP) ## regenerate the event dataclasses (schemas/events_generated.py) from the .avsc files
	$(BIN)/python -m heimdall.schemas.codegen

bench: $(STAMP) ## run the benchmarks and print their tables
	$(BIN)/python -m bench

clean: ## remove the embedded state (.heimdall/)
	rm -rf .heimdall

.PHONY: help install demo test test-unit lint schemas bench clean
