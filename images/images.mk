# Images (Dockerfile.engine, Dockerfile.operator), built with buildah without a daemon; see
# docs/images.md. Included by the main Makefile.
#
#   make images               the Dockerfiles' last stages on the binaries of `make build`
#                             -> target/images/{sqe,sqe-operator}.tar (docker archives) + sizes
#   make images-from-source   every stage, the workspace compiled inside the build
#   make lint-dockerfiles     hadolint on both Dockerfiles

.PHONY: images images-from-source lint-dockerfiles

images: build ## the engine and operator images from the release binaries (buildah, no daemon) -> target/images/*.tar
	@TARGET_DIR='$(TARGET_DIR)' SQE_CACHE_DIR='$(CACHE_DIR)' images/build.sh

images-from-source: ## the complete multi-stage build of both images (cargo-chef; slow: compiles the workspace)
	@TARGET_DIR='$(TARGET_DIR)' SQE_CACHE_DIR='$(CACHE_DIR)' images/build.sh --from-source

lint-dockerfiles: venv ## hadolint on Dockerfile.engine and Dockerfile.operator
	$(VENV)/bin/hadolint Dockerfile.engine Dockerfile.operator
