# feastline: feature, training and inference pipelines joined by Feast and the BentoML registry.
# `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

TRAIN_START ?= 2013-01-01
TRAIN_END ?= 2013-05-31
# "Now" for the main job: the end of the training window, on the simulated clock.
NOW ?= 2013-06-01T00:00:00+00:00
PYTEST_ARGS ?=

.PHONY: help setup run features materialize schedule status dataset test test-code test-data lint format bench clean clean-data

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with its dev tools

run: $(STAMP) ## the main job: ingest Jan-May, features, Feast, online store, training set
	$(BIN)/python -m feature_repo ingest --through $(TRAIN_END)
	$(BIN)/python -m feature_repo apply
	$(BIN)/python -m feature_repo materialize --now $(NOW)
	FEASTLINE_NOW=$(NOW) $(BIN)/python -m feature_repo status
	$(BIN)/python -m training build-dataset --start $(TRAIN_START) --end $(TRAIN_END)

features: $(STAMP) ## ingest raw data through TRAIN_END and update the feature tables
	$(BIN)/python -m feature_repo ingest --through $(TRAIN_END)

materialize: $(STAMP) ## one incremental run into the online store, up to NOW
	$(BIN)/python -m feature_repo materialize --now $(NOW)

schedule: $(STAMP) ## materialize every 15 minutes until stopped (Ctrl-C finishes the run in flight)
	$(BIN)/python -m feature_repo schedule --every 15m

status: $(STAMP) ## freshness of each feature view in the online store
	$(BIN)/python -m feature_repo status

dataset: $(STAMP) ## build the point-in-time training set for TRAIN_START..TRAIN_END
	$(BIN)/python -m training build-dataset --start $(TRAIN_START) --end $(TRAIN_END)

test: $(STAMP) ## run every test (needs Redis on 127.0.0.1:6379; .ci/run starts it)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP) ## offline-store benchmark (full year and 10x); prints a table
	$(BIN)/python bench/offline.py

clean-data: ## delete generated data (raw layer, features, registry, datasets)
	rm -rf data

clean: clean-data ## delete generated data and the virtualenv
	rm -rf $(VENV)
