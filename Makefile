# Heimdall — `make help` lists the targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,train]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install Heimdall with its test and training tools (CPU torch)

demo: $(STAMP) ## run the embedded pipeline on the simulated seed network for 60 s, then print the summary
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
