# The README's commands. `make test` installs what the tests need (sipp,
# rtpengine) on Debian when it is missing, then runs every test including the
# end-to-end ones with real peers.
GO ?= go
PKGS := ./...

.PHONY: all build test unit deps vet fuzz bench generate clean

all: build

build:
	$(GO) build -o bin/sbc ./cmd/sbc

# deps installs the real peers the end-to-end tests drive. The tests start
# rtpengine themselves; the packaged service, should the install start it,
# is stopped and disabled, since it would hold media ports 30000-40000.
deps:
	@command -v sipp >/dev/null 2>&1 || { \
		echo "installing sip-tester (sipp)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq sip-tester >/dev/null; \
	}
	@command -v rtpengine >/dev/null 2>&1 || { \
		echo "installing rtpengine-daemon"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq rtpengine-daemon >/dev/null; \
		$$SUDO systemctl disable --now rtpengine-daemon >/dev/null 2>&1 || $$SUDO service rtpengine-daemon stop >/dev/null 2>&1 || true; \
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
	$(GO) test -run=^$$ -fuzz=FuzzBencode -fuzztime=$(FUZZTIME) ./cmd/sbc-bench/internal/rtpengine/

# bench prints the Go micro-benchmarks, then the load harness: one 500-call
# run through the SBC, through rtpengine (driven as Kamailio does) and the
# harness's own ceiling (direct), then a short sweep of the SBC and of
# rtpengine for the largest call count with < 0.1 % loss and p99 < 1 ms,
# drawn in bin/sweep.png. Each prints sbc's figures over rtpengine's.
bench: deps
	$(GO) test -run=^$$ -bench=. -benchmem $(PKGS)
	$(GO) run ./cmd/sbc-bench -target sbc,rtpengine,direct -calls 500 -duration 10s -quiet
	mkdir -p bin
	$(GO) run ./cmd/sbc-bench -sweep -target sbc,rtpengine -max-calls 800 -duration 5s -quiet -plot bin/sweep.png

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
