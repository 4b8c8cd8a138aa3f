# The README's commands. `make test` installs what the tests need (sipp,
# Kamailio, rtpengine) on Debian when it is missing, then runs every test
# including the end-to-end ones with real peers.
GO ?= go
PKGS := ./...

.PHONY: all build test unit deps vet fuzz bench clean

all: build

build:
	$(GO) build -o bin/sbc ./cmd/sbc

# deps installs the real peers the end-to-end tests and the ladder drive:
# sipp, and Kamailio with rtpengine (command:Debian package). The tests run
# Kamailio and rtpengine themselves, so the services the packages start on a
# systemd host (Kamailio on :5060, rtpengine with its iptables rules) are
# stopped and disabled again.
PEERS := sipp:sip-tester kamailio:kamailio rtpengine:rtpengine-daemon
deps:
	@missing=; for p in $(PEERS); do command -v $${p%%:*} >/dev/null 2>&1 || missing="$$missing $${p#*:}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		if command -v systemctl >/dev/null 2>&1; then \
			$$SUDO systemctl disable --now kamailio.service rtpengine-daemon.service >/dev/null 2>&1 || true; \
		fi; \
	fi

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
# sweep for the largest call count with < 0.1 % loss and p99 < 1 ms, then a
# short call-setup ladder through the SBC and through Kamailio + rtpengine.
bench:
	$(GO) test -run=^$$ -bench=. -benchmem $(PKGS)
	$(GO) run ./cmd/sbc-bench -target sbc,direct -calls 500 -duration 10s -quiet
	$(GO) run ./cmd/sbc-bench -sweep -max-calls 800 -duration 5s -quiet
	$(GO) run ./cmd/sbc-bench ladder -systems sbc,kamailio -start 200 -step 200 -max 3000 -step-duration 10s -quiet

clean:
	rm -rf bin
