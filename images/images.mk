# Images (Dockerfile.engine, Dockerfile.operator), built with buildah without a daemon; see
# docs/images.md. Included by the main Makefile.
#
#   make images               the Dockerfiles' last stages on the binaries of `make build`
#                             -> target/images/{sqe,sqe-operator}.tar (docker archives) + sizes
#   make images-from-source   every stage, the workspace compiled inside the build
#   make lint-dockerfiles     hadolint on both Dockerfiles

.PHONY: images images-next images-from-source lint-dockerfiles

SQE_VERSION := $(shell awk -F'"' '/^\[workspace.package\]/ { p = 1 } p && /^version/ { print $$2; exit }' Cargo.toml)

images: build ## the engine and operator images from the release binaries (buildah, no daemon) -> target/images/*.tar
	@TARGET_DIR='$(TARGET_DIR)' SQE_CACHE_DIR='$(CACHE_DIR)' images/build.sh

images-next: build ## the engine image again as upgrade targets: $(SQE_VERSION)-next (stamped version) and $(SQE_VERSION)-next-p2 (and worker protocol + 1) -> target/images/sqe-*.tar
	@TARGET_DIR='$(TARGET_DIR)' SQE_CACHE_DIR='$(CACHE_DIR)' SQE_STAMP_VERSION='$(SQE_VERSION)-next' images/build.sh --engine-only
	@TARGET_DIR='$(TARGET_DIR)' SQE_CACHE_DIR='$(CACHE_DIR)' SQE_STAMP_VERSION='$(SQE_VERSION)-next-p2' \
		SQE_IMAGE_ENV='SQE_TEST_PROTOCOL_VERSION=2' images/build.sh --engine-only

images-from-source: ## the complete multi-stage build of both images (cargo-chef; slow: compiles the workspace)
	@TARGET_DIR='$(TARGET_DIR)' SQE_CACHE_DIR='$(CACHE_DIR)' images/build.sh --from-source

lint-dockerfiles: venv ## hadolint on Dockerfile.engine and Dockerfile.operator
	$(VENV)/bin/hadolint Dockerfile.engine Dockerfile.operator
