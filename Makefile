# SQE — the verbs. `make run` starts a local server; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO      ?= cargo
PYTHON     ?= python3
CACHE_DIR  ?= $(HOME)/.cache/sqe
REQS       := e2e/clients/requirements.txt
REQS_HASH  := $(shell sha256sum $(REQS) 2>/dev/null | cut -c1-12)
VENV       := $(CACHE_DIR)/venv-py311-$(REQS_HASH)
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
BIN        := $(TARGET_DIR)/release
DATA_DIR   ?= ./sqe-data

# Every build of the workspace's own crates goes through clippy-driver, warnings as errors: the
# lints run while the crates compile, so linting costs no second (check-mode) build of
# DataFusion and Iceberg, and `make lint`, `make build` and `make test` share one set of
# artifacts. (This is how `cargo clippy` itself drives the compiler: RUSTC_WORKSPACE_WRAPPER
# and CLIPPY_ARGS.) A plain `cargo build` works too, but rebuilds the workspace's crates.
CLIPPY_DRIVER ?= $(shell rustup which clippy-driver 2>/dev/null || command -v clippy-driver)
export RUSTC_WORKSPACE_WRAPPER := $(CLIPPY_DRIVER)
export CLIPPY_ARGS := -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__

.PHONY: operator-bin help build run test test-rust test-slt test-clients lint fmt bench venv clean-data crds check-crds render-samples bench-operator run-distributed load

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build every binary (release)
	$(CARGO) build --release --workspace --bins

run: build ## start sqe-server on 127.0.0.1 with the TPC-H sample (data in ./sqe-data)
	$(BIN)/sqe-server --data-dir $(DATA_DIR)

test: lint check-crds test-rust test-clients e2e e2e-pods ## lint, CRD drift, unit + SQL + operator tests, real clients, operator e2e on a local control plane, SQE pods on a real node

test-rust: ## unit tests and the sqllogictest suite
	$(CARGO) test --release --workspace

test-slt: ## only the sqllogictest suite, hybrid and distributed (SQE_SLT_FILTER=name to pick files)
	$(CARGO) test --release -p sqe-core --test sqllogictests
	$(CARGO) test --release -p sqe-server --test sqllogictests_distributed

test-clients: build venv trino-stack ## ADBC, pyarrow, sqe-cli, the trino client, JDBC drivers, the Trino CLI and a real Trino against the real sqe-server
	SQE_SERVER_BIN=$(abspath $(BIN))/sqe-server SQE_WORKER_BIN=$(abspath $(BIN))/sqe-worker \
		SQE_CLI_BIN=$(abspath $(BIN))/sqe-cli \
		$(VENV)/bin/pytest -q e2e/clients

lint: lint-dockerfiles ## rustfmt and clippy (on every target, tests included), hadolint; warnings are errors
	$(CARGO) fmt --all -- --check
	@test -n "$(CLIPPY_DRIVER)" || { echo "clippy-driver not found: rustup component add clippy"; exit 1; }
	$(CARGO) build --release --workspace --all-targets

fmt: ## format the code
	$(CARGO) fmt --all

venv: $(VENV)/.ok ## the Python venv for client tests and benchmarks (cached by requirements hash)

$(VENV)/.ok: $(REQS)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r $(REQS)
	touch $@

bench: build venv trino-stack ## TPC-H SF1: SQE (Flight SQL) vs DuckDB on the same data, and lineitem through Flight SQL, SQE's Trino protocol and a real Trino; tables in target/bench/
	$(VENV)/bin/python bench/tpch_bench.py --sqe-server $(BIN)/sqe-server --scale $${SCALE:-1}

DIST_DATA_DIR ?= ./sqe-data-distributed

run-distributed: build ## a coordinator and two workers on 127.0.0.1 with the TPC-H sample (data in ./sqe-data-distributed); Ctrl-C stops them
	$(PYTHON) bench/run_distributed.py --data-dir $(DIST_DATA_DIR) --bin-dir $(BIN)

load: build venv ## parallel clients, every answer checked: MODE=hybrid|distributed CLIENTS=10 DURATION=60 (or QUERIES=n) WORKERS=2 WORKER_MEMORY_MB= SCALE=0.01 FILES_PER_TABLE=4; target/bench/load-<mode>.md
	$(VENV)/bin/python bench/load.py --bin-dir $(BIN) --mode $${MODE:-hybrid} --clients $${CLIENTS:-10} \
		--duration $${DURATION:-60} $${QUERIES:+--queries $$QUERIES} --workers $${WORKERS:-2} \
		--worker-memory-mb $${WORKER_MEMORY_MB:-0} --scale $${SCALE:-0.01} --files-per-table $${FILES_PER_TABLE:-4}

bench-operator: build k8s-binaries ## 200 SqeClusters at once on a local control plane: time to Ready, RSS, CPU, API writes
	$(PYTHON) bench/operator_bench.py --clusters $${CLUSTERS:-200}

# the CRD is the operator's: building only its binary keeps `make crds` off the engine's build
# (--workspace keeps the features, and so the compiled dependencies, those of the full build)
OPERATOR_BIN := $(BIN)/sqe-operator
operator-bin:
	$(CARGO) build --release --workspace --bin sqe-operator

crds: operator-bin ## regenerate crds/sqecluster.yaml from the operator's Rust types
	@mkdir -p crds
	$(BIN)/sqe-operator crd > crds/sqecluster.yaml
	cp crds/sqecluster.yaml config/crd/sqecluster.yaml

check-crds: operator-bin ## fail when crds/sqecluster.yaml drifts from the Rust types
	@$(BIN)/sqe-operator crd | diff -u crds/sqecluster.yaml - \
		|| { echo "crds/sqecluster.yaml is out of date: run 'make crds' and commit it"; exit 1; }
	@cmp -s crds/sqecluster.yaml config/crd/sqecluster.yaml \
		|| { echo "config/crd/sqecluster.yaml differs from crds/: run 'make crds' and commit it"; exit 1; }

render-samples: build ## render every sample SqeCluster offline (what the operator would apply)
	@for f in config/samples/*.yaml; do echo "# $$f"; $(BIN)/sqe-operator render -f $$f || exit 1; done

clean-data: ## delete the local server's data directory
	rm -rf $(DATA_DIR)

# The real Trino reference server, the Trino CLI and the JDBC drivers the client tests use.
include e2e/trino/trino.mk

# `make cluster-up` also installs the CRD, starts the operator and applies a sample.
CLUSTER_AFTER_UP ?= e2e/cluster/install-sqe.sh
cluster-up: build
include e2e/cluster/cluster.mk

# Images of the engine and the operator (buildah).
include images/images.mk

# The operator e2e suite needs the binaries, and the local control plane unless KUBECONFIG is set.
e2e: build $(if $(KUBECONFIG),,k8s-binaries)
include e2e/operator/e2e.mk

# SQE clusters that really run: a real node (kubelet, containerd) beside the control plane.
include e2e/pods/pods.mk
