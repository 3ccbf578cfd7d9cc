# Every target that needs Python builds .venv first; the stamp is keyed to pyproject.toml's
# contents, so editing the dependencies re-installs on the next run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
BENCH_STAMP := $(VENV)/.bench-$(shell cksum pyproject.toml | cut -d' ' -f1)
DASH_STAMP  := $(VENV)/.dashboard-$(shell cksum pyproject.toml | cut -d' ' -f1)
EXP    ?= avocado
TRIALS ?=
JOBS   ?= 1
PORT   ?=
TEST_WORKERS ?= auto
# `make mlflow-server`: a database backend and an artifact destination (docs/distributed.md).
# `make storage-proxy`: the Optuna database the gRPC proxy serves to many workers.
STORAGE   ?= $(or $(OPTUNA_STORAGE),sqlite:///optuna.db)
BACKEND   ?= sqlite:///mlflow.db
ARTIFACTS ?= $(CURDIR)/mlartifacts
HOST      ?= 127.0.0.1
# The built-in competition is generated on first use; other experiments bring their own data.
AVOCADO = $(if $(filter avocado,$(EXP)),data/avocado/train.csv)

export MLFLOW_DISABLE_TELEMETRY ?= true
# The venv's tools first on every recipe's PATH: `mlflow models serve` execs `uvicorn` by name,
# so a plain shell (no `source .venv/bin/activate`) works too.
export PATH := $(abspath $(BIN)):$(PATH)
# `make serve`: the registry's champion of EXP, or any MLflow model URI / folder
MODEL ?= models:/$(EXP)@champion

.DEFAULT_GOAL := help
.PHONY: help setup data prepare train tune submit leaderboard ui serve dashboard mlflow-server storage-proxy gradcheck test test-slow lint bench clean distclean

help: ## list the targets
	@echo "usage: make TARGET [EXP=avocado] [TRIALS=N] [JOBS=N] [PORT=N] [MODEL=uri]"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@rm -f $(VENV)/.installed-*
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,grpc]'
	@touch $@

setup: $(STAMP) ## create .venv and install the project (automatic for every target)

data/avocado/train.csv: | $(STAMP)
	$(BIN)/pipeline data avocado

data: $(STAMP) ## generate the built-in avocado competition into data/avocado
	$(BIN)/pipeline data avocado

prepare: $(STAMP) $(AVOCADO) ## prepare EXP's arrays (cached by fingerprint)
	$(BIN)/pipeline prepare $(EXP)

train: $(STAMP) $(AVOCADO) ## cross-validate EXP's [model] defaults once, logged to MLflow
	$(BIN)/pipeline train $(EXP)

tune: $(STAMP) $(AVOCADO) ## the main job: prepare, tune, submit the best model, leaderboard (TRIALS=, JOBS=)
	$(BIN)/pipeline run $(EXP) --jobs $(JOBS) $(if $(TRIALS),--trials $(TRIALS))
	@echo "next: make ui   (compare every trial's convergence in MLflow)"

submit: $(STAMP) ## write the best trial's submission CSV for EXP, validated, into submissions/
	$(BIN)/pipeline submit $(EXP)

leaderboard: $(STAMP) ## every submission of EXP with CV and local Public / Private scores
	$(BIN)/pipeline leaderboard $(EXP)

ui: $(STAMP) ## MLflow UI on 127.0.0.1 (PORT=, default a free port)
	$(BIN)/pipeline ui $(if $(PORT),--port $(PORT))

serve: $(STAMP) ## EXP's champion model as a REST API on 127.0.0.1 (MODEL=, PORT=, default 5001)
	$(BIN)/mlflow models serve -m '$(MODEL)' --env-manager local -h $(HOST) -p $(or $(PORT),5001)

# optuna-dashboard is not needed by anything else, so it is installed on first use.
$(DASH_STAMP): $(STAMP)
	@rm -f $(VENV)/.dashboard-*
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,grpc,dashboard]'
	@touch $@

dashboard: $(DASH_STAMP) ## optuna-dashboard on 127.0.0.1 for optuna.db (installs it; PORT=, default 8080)
	$(BIN)/optuna-dashboard sqlite:///optuna.db --host $(HOST) --port $(or $(PORT),8080)

mlflow-server: $(STAMP) ## MLflow tracking server for many workers (BACKEND=db URL, ARTIFACTS=dir, HOST=, PORT=5000)
	@# in a process group of its own: SIGTERM or Ctrl-C to make stops the server and its workers;
	@# so does kill -9 of make (Linux tells the supervisor of its parent's death)
	exec $(BIN)/python -m pipeline.processes $(BIN)/mlflow server --backend-store-uri '$(BACKEND)' \
		--artifacts-destination '$(ARTIFACTS)' --serve-artifacts --host $(HOST) \
		--port $(or $(PORT),5000)

storage-proxy: $(STAMP) ## Optuna gRPC storage proxy for dozens of workers (STORAGE=db URL, HOST=, PORT=13000)
	$(BIN)/pipeline storage-proxy --storage '$(STORAGE)' --host $(HOST) --port $(or $(PORT),13000)

gradcheck: $(STAMP) ## backpropagation vs finite differences, every activation x task
	$(BIN)/pipeline gradcheck

# pytest-xdist: one worker per core; worksteal evens out the few long end-to-end tests. The
# end-to-end runs marked `slow` (worker processes, servers, signals, PostgreSQL) would double
# the suite's time: `make test-slow` runs them, and CI runs both.
test: $(STAMP) ## the test suite, on every core, under 5 minutes (TEST_WORKERS=N to choose)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m 'not slow'

test-slow: $(STAMP) ## the end-to-end tests marked slow: processes, servers, signals (CI runs them)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m slow

lint: $(STAMP) ## ruff
	$(BIN)/ruff check pipeline tests benchmarks

# The benchmarks' datasets come from packages in the `bench` extra, installed on first use.
$(BENCH_STAMP): $(STAMP)
	@rm -f $(VENV)/.bench-*
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,grpc,bench]'
	@touch $@

bench: $(BENCH_STAMP) ## benchmarks: speed ratios, and real tabular data vs scikit-learn (installs [bench])
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean: ## remove generated state: stores, artifacts, prepared caches (never your data or .venv)
	rm -rf mlflow.db optuna.db optuna.journal* mlartifacts trials data/*/prepared experiments/*.best.json
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -not -path './.venv/*' -prune -exec rm -rf {} +

distclean: clean ## clean, plus .venv and the generated avocado data
	rm -rf $(VENV) data/avocado
