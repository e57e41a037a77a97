# The real-pod suite (see e2e/pods/README.md). Included by the main Makefile.
#
#   make e2e-pods   images (buildah), the node's binaries (kubelet, kube-proxy, CoreDNS; cached),
#                   then pytest e2e/pods on a local control plane with a real node, torn down at
#                   the end. Needs root. E2E_PODS_ARGS passes pytest arguments (e.g. -k hybrid).

E2E_PODS_ARGS ?=

.PHONY: e2e-pods trino-client-image

e2e-pods: images images-next trino-client-image node-binaries k8s-binaries venv ## SQE clusters on a real node: security context, both protocols, restarts (needs root)
	cd e2e/pods && SQE_SERVER_BIN='$(abspath $(BIN))/sqe-server' SQE_CACHE_DIR='$(CACHE_DIR)' \
		SQE_TRINO_CLIENT_IMAGE="$$(cat '$(abspath target/images/trino-client.image)')" \
		$(VENV)/bin/python -m pytest $(E2E_PODS_ARGS)

trino-client-image: venv ## the client pods' Trino client image (Python + trino; cached) -> target/images/trino-client.tar
	@mkdir -p target/images && VENV='$(VENV)' SQE_CACHE_DIR='$(CACHE_DIR)' e2e/pods/trino-client/build.sh >target/images/trino-client.image
