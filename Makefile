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
# "Now" for the main job, on the simulated clock: after the training window, and the
# prediction time (departure - 2 h) of the first served flight, where the replay starts.
NOW ?= 2013-05-31T22:00:00+00:00
# Served days replayed after training. Calendar columns (month, weekday) need no
# exclusion: the reference's calibration finds them and leaves them out of the verdict.
SERVE_START ?= 2013-06-01
SERVE_DAYS ?= 3
SERVE_PORT ?= 3000
MONITOR_ARGS ?=
PYTEST_ARGS ?=
# Two processes, a test file in one at a time (its module fixtures built once); the
# second gets its own redis-server (tests/conftest.py). PYTEST_WORKERS= runs one.
PYTEST_WORKERS ?= -n 2 --dist loadfile

.PHONY: help setup lock run features materialize schedule status serve dataset test test-code test-data lint format bench clean clean-data

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Every install is the same: the exact versions and hashes in requirements.lock
# (runtime and dev tools), then the project itself without resolving anything.
LOCK := requirements.lock
LOCK_ARGS ?=
# The pyproject extras the lock (and so every install) includes.
LOCK_EXTRAS ?= dev spark

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	# The venv's own pip (23.x on Python 3.11) rejects a hashed lock that strips extras
	# (feast asks for uvicorn[standard]): first the pip version the lock pins.
	$(BIN)/python -m pip install --quiet "pip==$$(sed -n 's/^pip==\([^ ]*\).*/\1/p' $(LOCK))"
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the locked versions (requirements.lock) and the project

# Keeps the current pins that still satisfy pyproject.toml; LOCK_ARGS=--upgrade takes the newest.
lock: $(STAMP) ## recompile requirements.lock (exact versions, hashes) from pyproject.toml and its extras
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras $(LOCK_EXTRAS:%=--extra %) \
		--no-emit-index-url --no-emit-find-links --output-file $(LOCK) $(LOCK_ARGS) pyproject.toml

# pyspark and sqlglot come with every install (the lock holds the spark extra); the
# Spark engine needs Java besides.
SPARK_STAMP := $(VENV)/.installed-spark
$(SPARK_STAMP): $(STAMP)
	command -v java >/dev/null || { apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless; }
	touch $(SPARK_STAMP)

.PHONY: setup-spark
setup-spark: $(SPARK_STAMP) ## add what the Spark engine needs besides the lock (Java 17 from Debian)

run: $(STAMP) ## the main job: features, online store, training set, model, serving replay, drift report, overview page
	$(BIN)/python -m feature_repo ingest --through $(TRAIN_END)
	$(BIN)/python -m feature_repo apply
	$(BIN)/python -m feature_repo materialize --now $(NOW)
	FEASTLINE_NOW=$(NOW) $(BIN)/python -m feature_repo status
	$(BIN)/python -m training build-dataset --start $(TRAIN_START) --end $(TRAIN_END)
	$(BIN)/python -m training train --train-start $(TRAIN_START) --train-end $(FIT_END) --valid-end $(TRAIN_END) --promote $(TRAIN_ARGS)
	FEASTLINE_PROFILE_INTERVAL=1d $(BIN)/python -m serving demo --start $(SERVE_START) --days $(SERVE_DAYS) --port $(SERVE_PORT)
	$(BIN)/python -m monitoring compare $(MONITOR_ARGS) || [ $$? -eq 3 ]
	$(BIN)/python -m monitoring overview

features: $(STAMP) ## ingest raw data through TRAIN_END and update the feature tables
	$(BIN)/python -m feature_repo ingest --through $(TRAIN_END)

materialize: $(STAMP) ## one incremental run into the online store, up to NOW
	$(BIN)/python -m feature_repo materialize --now $(NOW)

schedule: $(STAMP) ## materialize every 15 minutes until stopped (Ctrl-C finishes the run in flight)
	$(BIN)/python -m feature_repo schedule --every 15m

status: $(STAMP) ## freshness of each feature view in the online store
	$(BIN)/python -m feature_repo status

serve: $(STAMP) ## start the BentoML service on 127.0.0.1:3000 (champion model, online features)
	$(BIN)/python -m serving serve --port 3000

.PHONY: bento
bento: $(STAMP) ## build the service's Bento (bentofile.yaml); `bentoml serve flight_delay_service:latest` runs it
	BENTOML_DO_NOT_TRACK=True $(BIN)/bentoml build .

dataset: $(STAMP) ## build the point-in-time training set for TRAIN_START..TRAIN_END
	$(BIN)/python -m training build-dataset --start $(TRAIN_START) --end $(TRAIN_END)

test: $(SPARK_STAMP) ## run every test, in two processes (needs Redis on 127.0.0.1:6379, which .ci/run starts)
	$(BIN)/python -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check, format check and the type check (mypy, configured in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: ## list the benchmarks; each prints a table (they are slow, and never run in tests)
	@grep -E '^bench-[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-18s %s\n", $$1, $$2}'

.PHONY: bench-partition-checksums
bench-partition-checksums: $(STAMP) ## full-year training set: feature partition checks on vs off
	$(BIN)/python bench/partition_checksums.py $(BENCH_CHECKSUMS_ARGS)

.PHONY: bench-materialize
bench-materialize: $(STAMP) ## Redis materialization: rows/s vs a raw ceiling; cost per run vs history
	$(BIN)/python bench/materialize.py $(BENCH_MATERIALIZE_ARGS)

# Needs `make run` first and Redis on 127.0.0.1:6379; flushes db 10 (--redis-url to change).
# Paired live comparison of a challenger in shadow or canary with the champion; exit 3 if worse.
CHALLENGER ?=
COMPARE_ARGS ?=
.PHONY: compare-models
compare-models: $(STAMP) ## champion vs CHALLENGER on the same live flights: paired CIs, verdict, HTML
	$(BIN)/python -m monitoring compare-models --challenger $(CHALLENGER) $(COMPARE_ARGS)

.PHONY: bench-serving
bench-serving: $(STAMP) ## our service vs a naive BentoML service vs in-process: p50, p99, req/s, ratios
	$(BIN)/python bench/serving.py $(BENCH_SERVING_ARGS)

# Training: fit on TRAIN_START..FIT_END, validate on the days after FIT_END through TRAIN_END.
# `make run` also promotes the new model when it passes the gate (a refusal is not an error).
FIT_END ?= 2013-04-30
TRAIN_ARGS ?=

.PHONY: train bench-train datasets reproduce
train: $(STAMP) ## train, evaluate and register a candidate model; prints the report path
	$(BIN)/python -m training train --train-start $(TRAIN_START) --train-end $(FIT_END) --valid-end $(TRAIN_END) $(TRAIN_ARGS)

datasets: $(STAMP) ## list the stored training sets: window, as-of watermark, rows, fingerprint, models using each
	$(BIN)/python -m training datasets list

# Exit 0 only when the rebuilt set has the recorded fingerprint and ROC-AUC agrees to 1e-6.
TAG ?= champion
reproduce: $(STAMP) ## rebuild a model's training set as of its watermark, refit, compare: make reproduce [TAG=...]
	$(BIN)/python -m training models reproduce $(TAG)

bench-train: $(STAMP) ## build-dataset + train: wall time and peak memory, full year and 10x
	$(BIN)/python bench/train.py

# Its own data dir (default /tmp/feastline-bench-retraining; the full-year set and each
# policy's scores are cached there). BENCH_RETRAINING_ARGS passes flags, e.g. --policies naive,hl90.
.PHONY: bench-retraining
bench-retraining: $(STAMP) ## retraining policies vs static and naive monthly: ROC-AUC by month, paired CIs, retrain time
	$(BIN)/python bench/retraining_policies.py $(BENCH_RETRAINING_ARGS)

.PHONY: bench-paired-ci
bench-paired-ci: $(STAMP) ## is the gate's paired ROC-AUC CI as wide as day-to-day noise? (a finished SIM_DATA)
	$(BIN)/python bench/paired_ci_calibration.py --data-dir $(SIM_DATA)

# ENGINES: duckdb,spark (default; Spark on a standalone master and worker it starts and
# stops), or add dask,dask-chunked,duckdb-single (Feast's Dask store; tens of minutes at
# 10x). The docs' Dask figures: ENGINES=duckdb,dask,dask-chunked,duckdb-single
# BENCH_OFFLINE_ARGS="--scales 1,10 --end 2013-12-31". BENCH_OFFLINE_ARGS passes flags.
ENGINES ?= duckdb,spark
.PHONY: bench-offline
bench-offline: $(SPARK_STAMP) ## training set on DuckDB vs Spark (or Dask) at 1x, 10x, 30x: wall, CPU, memory, agreement
	$(BIN)/python bench/offline.py --engines $(ENGINES) $(BENCH_OFFLINE_ARGS)

# Needs `make setup-spark`; starts (and stops) its own standalone Spark master and worker.
.PHONY: bench-feature-build
bench-feature-build: $(SPARK_STAMP) ## feature build on DuckDB vs Spark (standalone cluster) at 1x, 10x, 30x: wall, CPU, memory
	$(BIN)/python bench/feature_build.py $(BENCH_FEATURE_BUILD_ARGS)

# Drift check for cron or CI: exit 3 when the drift policy fails, 2 on a bad profile.
REFERENCE ?=
DRIFT_TARGET ?= $(or $(FEASTLINE_DATA_DIR),data)/monitoring/profiles
DRIFT_ARGS ?=

.PHONY: drift bench-whylogs
drift: $(STAMP) ## compare served profiles with a reference: make drift REFERENCE=ref.bin [DRIFT_TARGET=dir] [DRIFT_ARGS=...]
	@test -n "$(REFERENCE)" || { echo "set REFERENCE=<the model's reference .bin>" >&2; exit 2; }
	$(BIN)/python -m monitoring compare --reference $(REFERENCE) --target $(DRIFT_TARGET) $(DRIFT_ARGS)

bench-whylogs: $(STAMP) ## whylogs cost per row by batch size; ProfileLogger.log() cost per call
	$(BIN)/python bench/profiling.py

# The champion's reference profile (from the registry) against the served profiles:
# the drift table, drift.json and the HTML report's path. Exit 3 when the policy fails.
.PHONY: monitor bench-overhead bench-drift bench-drift-calibration
monitor: $(STAMP) ## compare served profiles with the champion's reference profile; prints the table and the report path
	$(BIN)/python -m monitoring compare --target $(DRIFT_TARGET) $(MONITOR_ARGS)

bench-overhead: $(STAMP) ## the service with monitoring on vs off: p50/p99/throughput ratios, dropped rows
	$(BIN)/python bench/serving_overhead.py

# Both prepare their own data directory on first use (ingest through July, a small model).
bench-drift-calibration: $(STAMP) ## drift calibration of the January-May reference: seconds vs profiling the same rows
	$(BIN)/python bench/drift_calibration.py

bench-drift: $(STAMP) ## drift verdicts measured: false alarms Feb-May, July weeks, injected faults, label shift
	$(BIN)/python bench/drift_acceptance.py

# The continuous-training loop over the bundled year, in a data dir of its own (wiped
# first: a simulation starts from the January-May champion, as `make run` trains it).
# The flights are scored in process, by the service's own scoring code (see docs/lifecycle.md).
SIM_DATA ?= data/simulation
SIM_START ?= 2013-06-01
SIM_END ?= 2013-12-31
SIM_REPORT ?= data/reports/lifecycle
SIM_ARGS ?=

.PHONY: simulate simulation-base bench-lifecycle
simulation-base: $(STAMP) ## a fresh SIM_DATA where the loop starts: January-May published, the January-April champion promoted
	rm -rf $(SIM_DATA)
	FEASTLINE_DATA_DIR=$(SIM_DATA) $(BIN)/python -m feature_repo ingest --through $(TRAIN_END) -q
	FEASTLINE_DATA_DIR=$(SIM_DATA) $(BIN)/python -m feature_repo apply -q
	FEASTLINE_DATA_DIR=$(SIM_DATA) $(BIN)/python -m feature_repo materialize --now $(NOW) -q
	FEASTLINE_DATA_DIR=$(SIM_DATA) $(BIN)/python -m training train --train-start $(TRAIN_START) --train-end $(FIT_END) --valid-end $(TRAIN_END) --promote -q

simulate: simulation-base ## the loop (retrain, shadow, promote, roll back) June-December vs static and naive monthly; data/reports/lifecycle
	FEASTLINE_DATA_DIR=$(SIM_DATA) $(BIN)/python -m lifecycle simulate --start $(SIM_START) --end $(SIM_END) --report-dir $(SIM_REPORT) $(SIM_ARGS)

bench-lifecycle: $(STAMP) ## the June-December simulation by phase, and one retrain at 1x data (targets 20 min, 60 s); BENCH_LIFECYCLE_ARGS="--segment 2013-06-01:2013-06-10 --against main" times a segment against another commit
	$(BIN)/python bench/lifecycle.py $(BENCH_LIFECYCLE_ARGS)

clean-data: ## delete generated data (raw layer, features, registry, datasets)
	rm -rf data

clean: clean-data ## delete generated data and the virtualenv
	rm -rf $(VENV)
