# The operator's end-to-end suite (see e2e/operator/README.md).
# Included by the main Makefile:  include e2e/operator/e2e.mk
#
#   make e2e    pytest e2e/operator: the real sqe-operator (and sqe-server) binaries against a
#               real API server: the local control plane (e2e/cluster/up.sh in
#               $(E2E_CLUSTER_DIR), started and stopped by the suite) or, if KUBECONFIG is set,
#               that cluster. Builds nothing Rust: the binaries in $(E2E_BIN) must exist.
#
# Variables: E2E_BIN (default $(BIN), else target/release), E2E_CLUSTER_DIR (default
# $(CURDIR)/target/e2e-cluster; not target/cluster, so it runs beside `make cluster-up`),
# E2E_PYTEST_ARGS (e.g. -k leader, -x), E2E_PYTHON (default the venv's python).

E2E_MK_DIR      := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
E2E_BIN         ?= $(or $(BIN),target/release)
E2E_CLUSTER_DIR ?= $(CURDIR)/target/e2e-cluster
E2E_PYTHON      ?= $(if $(VENV),$(VENV)/bin/python,python3)
E2E_PYTEST_ARGS ?=

.PHONY: e2e

e2e: venv ## run the operator e2e suite on a local control plane (or $KUBECONFIG)
	cd $(E2E_MK_DIR) && \
		SQE_OPERATOR_BIN='$(abspath $(E2E_BIN))/sqe-operator' \
		SQE_SERVER_BIN='$(abspath $(E2E_BIN))/sqe-server' \
		SQE_E2E_CLUSTER_DIR='$(abspath $(E2E_CLUSTER_DIR))' \
		$(E2E_PYTHON) -m pytest $(E2E_PYTEST_ARGS)
