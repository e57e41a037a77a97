# Local Kubernetes control plane for the e2e tests (see e2e/cluster/README.md).
# Included by the main Makefile:  include e2e/cluster/cluster.mk
#
#   make k8s-binaries   build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok
#                       (cached in $(CACHE_DIR)/k8s-<v>-etcd-<v>-kwok-<v>/bin; instant when built)
#   make cluster-up     start the control plane + 3 kwok nodes; kubeconfig in $(CLUSTER_DIR)
#                       then runs $(CLUSTER_AFTER_UP) if that file exists (KUBECONFIG exported)
#   make cluster-up REAL_NODE=1
#                       the same plus a real node (e2e/node/up.sh: containerd, kubelet, kube-proxy,
#                       CoreDNS) with the images of `make images` imported; pods really run there
#   make cluster-down   stop it (logs kept, etcd data removed; a real node is torn down first)
#   make cluster-smoke  check rollouts, stalls, GC, namespace deletion, audit log on it
#
# Variables: CACHE_DIR (default ~/.cache/sqe), CLUSTER_DIR (default $(CURDIR)/target/cluster),
# CLUSTER_AFTER_UP (a script to run after cluster-up, e.g. install CRDs, start the operator).

CLUSTER_MK_DIR   := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
CACHE_DIR        ?= $(HOME)/.cache/sqe
CLUSTER_DIR      ?= $(CURDIR)/target/cluster
CLUSTER_AFTER_UP ?=
CLUSTER_ENV       = SQE_CACHE_DIR='$(CACHE_DIR)' SQE_CLUSTER_DIR='$(CLUSTER_DIR)'

.PHONY: k8s-binaries node-binaries cluster-up cluster-down cluster-smoke

k8s-binaries: ## build the local control plane's binaries (cached by version)
	@$(CLUSTER_ENV) $(CLUSTER_MK_DIR)/build.sh >/dev/null

node-binaries: ## build a real node's kubelet, kube-proxy, CoreDNS and pause (cached by version)
	@$(CLUSTER_ENV) $(CLUSTER_MK_DIR)/../node/build.sh >/dev/null

cluster-up: k8s-binaries $(if $(REAL_NODE),images node-binaries) ## start etcd, API server, controller-manager, scheduler, kwok on 127.0.0.1 (REAL_NODE=1: and a real node)
	@$(CLUSTER_ENV) $(CLUSTER_MK_DIR)/up.sh
	@if [ -n '$(REAL_NODE)' ]; then $(CLUSTER_ENV) $(CLUSTER_MK_DIR)/../node/up.sh; fi
	@if [ -n '$(CLUSTER_AFTER_UP)' ] && [ -f '$(CLUSTER_AFTER_UP)' ]; then \
		echo "cluster-up: running $(CLUSTER_AFTER_UP)"; \
		KUBECONFIG='$(CLUSTER_DIR)/kubeconfig' $(CLUSTER_ENV) bash '$(CLUSTER_AFTER_UP)'; \
	fi

cluster-down: ## stop the local control plane and a real node (logs kept in $(CLUSTER_DIR)/logs)
	@$(CLUSTER_ENV) $(CLUSTER_MK_DIR)/../node/down.sh
	@$(CLUSTER_ENV) $(CLUSTER_MK_DIR)/down.sh

cluster-smoke: ## check the local control plane (rollouts, never-ready stall, GC, namespaces)
	@KUBECONFIG='$(CLUSTER_DIR)/kubeconfig' $(CLUSTER_ENV) $(CLUSTER_MK_DIR)/smoke.sh
