# initbox: `make` builds static binaries into bin/ and the image into dist/;
# `make test` runs every test.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
PKG      := github.com/initbox/initbox
LDFLAGS  := -s -w -X $(PKG)/internal/cli.version=$(VERSION) -X $(PKG)/internal/cli.commit=$(COMMIT)
BUILDFLAGS := $(shell grep -v '^\#' build.flags)
BUILD    := CGO_ENABLED=0 $(GO) build -trimpath $(BUILDFLAGS) -ldflags '$(LDFLAGS)'
SINGLES  := $(notdir $(wildcard cmd/*))
ARCHES   := amd64 arm64
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all build image push test test-fast test-deps bench fuzz lint fmt clean

# Tests build with the tags the binary ships with (build.flags: no HTTP/2 in
# net/http), so what they judge is what runs in a pod.
TESTTAGS := $(shell grep '^-tags' build.flags)

all: build image

build:
	@mkdir -p bin
	$(BUILD) -o bin/initbox .
	@for c in $(SINGLES); do echo "$(BUILD) -o bin/$$c ./cmd/$$c"; $(BUILD) -o bin/$$c ./cmd/$$c || exit 1; done
	@for a in $(ARCHES); do echo "GOOS=linux GOARCH=$$a $(BUILD) -o bin/linux-$$a/initbox ."; GOOS=linux GOARCH=$$a $(BUILD) -o bin/linux-$$a/initbox . || exit 1; done

# The scratch image, amd64 + arm64, without Docker: dist/oci, dist/initbox-ARCH.tar.
image: build
	$(GO) run ./images build -out dist -version $(VERSION) -revision $(COMMIT)

# make push IMAGE=registry.example/initbox:v1
push: image
	@test -n "$(IMAGE)" || { echo "usage: make push IMAGE=registry/name:tag"; exit 2; }
	$(GO) run ./images push -image $(IMAGE)

test-deps:
	@scripts/test-deps.sh test

# Every test: unit, command-line (testscript), integration against real
# servers, the node suite on a real kubelet, and the size and import-graph
# guards. 30m: on a cold Go cache the node suite (test/e2e_node) first builds the
# kubelet, containerd, runc and CoreDNS (about 6 minutes here) after
# kube-apiserver.
test: test-deps
	$(GO) vet $(TESTTAGS) ./...
	$(GO) test $(TESTTAGS) -count=1 -timeout 30m ./...

# The fast loop: formatting, vet, the unit and command-line tests; every
# real-server suite skips under -short (testenv.RealServer). No packages are
# installed.
test-fast: fmt-check
	$(GO) vet $(TESTTAGS) ./...
	$(GO) test $(TESTTAGS) -short -count=1 -timeout 10m ./...

# make fmt formats every Go file; fmt-check (in test-fast and lint) fails on
# one gofmt would change.
fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt would change the files above: make fmt"; exit 1; }

bench: build
	@scripts/test-deps.sh bench
	$(GO) run ./bench -out bench/results
	@scripts/test-deps.sh test
	$(GO) test -run XXX -bench SeedPattern -benchtime 20x ./test/e2e
	$(GO) test -run XXX -bench PodStartup -benchtime 20x -timeout 30m ./test/e2e_node
	$(GO) test -run XXX -bench K8sWatchDetection -benchtime 20x ./internal/waitfor
	$(GO) test -run XXX -bench RegisterCrowd -benchtime 5x ./internal/register

# Every fuzz target for FUZZTIME each (make test runs their seeds only).
FUZZTIME ?= 60s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run XXX -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

lint: fmt-check
	$(GO) vet $(TESTTAGS) ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

clean:
	rm -rf bin dist bench/results
