# ragstream — the commands a newcomer and CI use. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
PKG       := github.com/ragstream/ragstream
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X $(PKG)/internal/buildinfo.Version=$(VERSION) -X $(PKG)/internal/buildinfo.Commit=$(COMMIT)
BIN       := bin/ragstream
STATICCHECK_VERSION := v0.8.2
BENCH     ?= .
BENCHTIME ?=

.PHONY: help demo build test bench up down lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## build bin/ragstream with version facts stamped in
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ragstream

demo: ## run the main job on the embedded default and show what landed (~1 min)
	scripts/demo.sh

test: ## start Kafka, Neo4j and Redis, run every test (race detector on), bounded fuzzing, stop them
	scripts/test.sh

bench: ## run the benchmarks (services started for the ones that need them)
	scripts/bench.sh '$(BENCH)' '$(BENCHTIME)'

up: ## start the real services for tests (writes .services/env)
	scripts/services.sh up

down: ## stop the services `make up` started
	scripts/services.sh down

lint: ## go vet + staticcheck (pinned)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

clean: ## remove build output
	rm -rf bin
