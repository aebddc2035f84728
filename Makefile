# Corral — the developer's entry points. `make help` lists them.
# go from PATH, else where this kind of machine installs it.
GO        ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN       ?= bin
PKGS      ?= ./...
# Packages whose tests run under the race detector (everything with goroutines).
RACE_PKGS ?= ./...
# Packages whose in-process multi-member tests are built only without the race
# detector (protoactor-go races with itself there; see actors/cluster/cluster_test.go).
NORACE_PKGS ?= ./actors/cluster/
TEST_TIMEOUT ?= 45m
LISTEN    ?= 127.0.0.1:7070

.PHONY: help build run test test-deps test-short bench lint fmt proto fuzz clean image k8s-up k8s-down

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

build: ## build bin/corral and the static bin/corral-agent
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/corral-agent ./cmd/corral-agent
	$(GO) build -o $(BIN)/corral ./cmd/corral

run: build ## start the server on 127.0.0.1 with the local runtime and print the URL
	$(BIN)/corral serve --listen $(LISTEN)

test: test-deps ## the Debian packages the tests need (test-deps), vet, then every test (race detector on), fuzz seed corpora included
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(RACE_PKGS)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(NORACE_PKGS)

# NO_TEST_DEPS=1 skips it (tests that need a missing package then fail or skip).
test-deps: ## install the Debian packages the tests need (as root with apt-get), or list them and stop
	@if [ -z "$(NO_TEST_DEPS)" ]; then ./scripts/test-deps; fi

test-short: ## the fast subset (no Docker, no browser)
	$(GO) test -short -count=1 $(PKGS)

bench: build ## run the benchmarks and regenerate BENCHMARKS.md
	./bench/run.sh

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt: ## gofmt every file
	gofmt -w $$(git ls-files '*.go')

proto: ## regenerate the protobuf messages (installs protoc-gen-go)
	./actors/proto/gen.sh

fuzz: ## run each fuzzer for FUZZTIME (default 30s)
	./bench/fuzz.sh $${FUZZTIME:-30s}

image: build ## build the minimal Docker sandbox image (busybox + bash-static)
	$(BIN)/corral image build --minimal

k8s-up: build ## bring up the single-node Kubernetes testbed (idempotent; last line KUBECONFIG=PATH; env in /var/tmp/corral-k8s/env)
	./scripts/k8s/up.sh

k8s-down: ## remove everything k8s-up created (keeps the cached binaries)
	./scripts/k8s/down.sh

clean: ## remove build output
	rm -rf $(BIN)
