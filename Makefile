# The README's commands. `make test` installs what the tests need (sipp) on
# Debian when it is missing, then runs every test including the end-to-end
# ones with real peers.
GO ?= go
PKGS := ./...

.PHONY: all build test unit deps vet fuzz bench generate clean

all: build

build:
	$(GO) build -o bin/sbc ./cmd/sbc

# deps installs the real peers the end-to-end tests drive.
deps:
	@command -v sipp >/dev/null 2>&1 || { \
		echo "installing sip-tester (sipp)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq sip-tester >/dev/null; \
	}

vet:
	$(GO) vet $(PKGS)

# -p 1: the end-to-end and load tests of different packages share the
# loopback addresses and the two cores; one package at a time keeps their
# timings honest.
test: deps vet
	$(GO) test -race -count=1 -p 1 -timeout 15m $(PKGS)

# unit runs only the fast tests (no real peers).
unit:
	$(GO) test -short -count=1 $(PKGS)

# fuzz runs each fuzz target briefly; FUZZTIME=5m for a longer session.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzParseRewrite -fuzztime=$(FUZZTIME) ./sbc/sdp/
	$(GO) test -run=^$$ -fuzz=FuzzParseConfig -fuzztime=$(FUZZTIME) ./sbc/
	$(GO) test -run=^$$ -fuzz=FuzzBadRequest -fuzztime=$(FUZZTIME) ./sbc/

# bench prints the Go micro-benchmarks, then the load harness: one 500-call
# run through the SBC and the harness's own ceiling (direct), then a short
# sweep for the largest call count with < 0.1 % loss and p99 < 1 ms.
bench:
	$(GO) test -run=^$$ -bench=. -benchmem $(PKGS)
	$(GO) run ./cmd/sbc-bench -target sbc,direct -calls 500 -duration 10s -quiet
	$(GO) run ./cmd/sbc-bench -sweep -max-calls 800 -duration 5s -quiet

# generate rebuilds the eBPF objects in bpf/ from bpf/src/ (bpf2go); the
# results are committed so that go build needs no clang. Needs clang-14,
# llvm-14 and libbpf-dev, installed here when missing.
generate:
	@command -v clang-14 >/dev/null 2>&1 && [ -f /usr/include/bpf/bpf_helpers.h ] || { \
		echo "installing clang-14 llvm-14 libbpf-dev"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq clang-14 llvm-14 libbpf-dev >/dev/null; \
	}
	$(GO) generate ./bpf/

clean:
	rm -rf bin
