# The real Trino reference stack for the e2e tests (see e2e/trino/fetch.sh).
# Included by the main Makefile:  include e2e/trino/trino.mk
#
#   make trino-stack   download Trino 476 (server + TPC-H plugin, CLI, JDBC) and the Arrow
#                      Flight SQL JDBC driver into $(CACHE_DIR)/trino-476 (instant when cached)
#
# Variables: CACHE_DIR (default ~/.cache/sqe), MAVEN_REPO (default Maven Central).
# The server needs Java 24+: $(TRINO_JAVA_HOME), default /usr/lib/jvm/temurin-25-jdk-amd64.

TRINO_MK_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
CACHE_DIR    ?= $(HOME)/.cache/sqe

.PHONY: trino-stack

trino-stack: ## download the Trino 476 reference server, CLI and JDBC drivers (cached by version)
	@CACHE_DIR='$(CACHE_DIR)' bash $(TRINO_MK_DIR)/fetch.sh
