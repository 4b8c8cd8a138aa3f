# The README's commands. `make test` installs what the tests need (sipp,
# Kamailio, rtpengine) on Debian when it is missing, then runs every test
# including the end-to-end ones with real peers.
GO ?= go
PKGS := ./...

.PHONY: all build test unit deps vet fuzz bench generate clean

all: build

build:
	$(GO) build -o bin/sbc ./cmd/sbc

# deps installs the real peers the end-to-end tests and the ladder drive:
# sipp, Kamailio (with its TLS module) and rtpengine, testssl.sh, baresip,
# SIPVicious (command:Debian package). The tests run
# Kamailio and rtpengine themselves, so the services the packages start on a
# systemd host (Kamailio on :5060, rtpengine with its iptables rules) are
# stopped and disabled again.
PEERS := sipp:sip-tester kamailio:kamailio rtpengine:rtpengine-daemon testssl:testssl.sh baresip:baresip-core svmap:sipvicious
# PostgreSQL (Debian's postgresql): the control plane's store tests start a
# throw-away server of their own from /usr/lib/postgresql/*/bin; the
# cluster the package makes and starts is stopped again. Exim (Debian's
# exim4-daemon-light, /usr/sbin/exim4: not in a user's PATH): the e-mail
# tests run their own on loopback; the system MTA on :25 is stopped again.
deps:
	@missing=; for p in $(PEERS); do command -v $${p%%:*} >/dev/null 2>&1 || missing="$$missing $${p#*:}"; done; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 || missing="$$missing kamailio-tls-modules"; \
	[ -x /usr/sbin/exim4 ] || missing="$$missing exim4-daemon-light"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		if command -v systemctl >/dev/null 2>&1; then \
			$$SUDO systemctl disable --now kamailio.service rtpengine-daemon.service postgresql.service exim4.service >/dev/null 2>&1 || true; \
		fi; \
		for svc in kamailio rtpengine-daemon postgresql exim4; do $$SUDO service $$svc stop >/dev/null 2>&1 || true; done; \
	fi

vet:
	$(GO) vet $(PKGS)

# -p 1: the end-to-end and load tests of different packages share the
# loopback addresses and the two cores; one package at a time keeps their
# timings honest.
test: deps vet
	$(GO) test -race -count=1 -p 1 -timeout 15m $(PKGS)
	# Allocation checks without the race detector, under which sync.Pool
	# (pion's SRTP buffers) allocates at random.
	$(GO) test -count=1 -run 'DoesNotAllocate' ./media/
	$(MAKE) --no-print-directory fuzz FUZZTIME=20000x

# unit runs only the fast tests (no real peers).
unit:
	$(GO) test -short -count=1 $(PKGS)

# fuzz runs each fuzz target briefly; FUZZTIME=5m for a longer session.
# make test runs 20,000 inputs each: a count, not a duration, since Go
# 1.26's fuzz coordinator can fail a duration run at its deadline on a busy
# machine (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzParseRewrite -fuzztime=$(FUZZTIME) ./sbc/sdp/
	$(GO) test -run=^$$ -fuzz=FuzzParseCrypto -fuzztime=$(FUZZTIME) ./sbc/sdp/
	$(GO) test -run=^$$ -fuzz=FuzzNegotiate -fuzztime=$(FUZZTIME) ./sbc/
	$(GO) test -run=^$$ -fuzz=FuzzParseConfig -fuzztime=$(FUZZTIME) ./sbc/
	$(GO) test -run=^$$ -fuzz=FuzzBadRequest -fuzztime=$(FUZZTIME) ./sbc/
	$(GO) test -run=^$$ -fuzz=FuzzBencode -fuzztime=$(FUZZTIME) ./sbc/sbctest/rtpengine/
	$(GO) test -run=^$$ -fuzz=FuzzE164 -fuzztime=$(FUZZTIME) ./control/
	$(GO) test -run=^$$ -fuzz=FuzzClassifier -fuzztime=$(FUZZTIME) ./control/
	$(GO) test -run=^$$ -fuzz=FuzzParseMoney -fuzztime=$(FUZZTIME) ./control/store/
	$(GO) test -run=^$$ -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./sbc/digest/
	$(GO) test -run=^$$ -fuzz=FuzzParseIMDN -fuzztime=$(FUZZTIME) ./control/messaging/

# bench prints the Go micro-benchmarks, then the load harness: one 500-call
# run through the SBC, through rtpengine (driven as Kamailio does) and the
# harness's own ceiling (direct), then a short sweep of the SBC and of
# rtpengine for the largest call count with < 0.1 % loss and p99 < 1 ms,
# drawn in bin/sweep.png (each prints sbc's figures over rtpengine's); then
# 10,100 calls up at once (100 with media) for memory per call at scale;
# then a short call-setup ladder through the SBC and Kamailio + rtpengine.
bench: deps
	$(GO) test -run=^$$ -bench=. -benchmem $(PKGS)
	$(GO) run ./cmd/sbc-bench -target sbc,rtpengine,direct -calls 500 -duration 10s -quiet
	mkdir -p bin
	$(GO) run ./cmd/sbc-bench -sweep -target sbc,rtpengine -max-calls 800 -duration 5s -quiet -plot bin/sweep.png
	$(GO) run ./cmd/sbc-bench -target sbc -calls 100 -idle-calls 10000 -rate 500 -duration 70s -sbc-ip 127.0.0.2 -sbc-port-min 20000 -quiet
	$(GO) run ./cmd/sbc-bench ladder -systems sbc,kamailio -start 200 -step 200 -max 3000 -step-duration 10s -quiet
	# Secure media (issue 5): the caller's leg SRTP (AES_CM_128_HMAC_SHA1_80),
	# the callee's plain, through sbc and rtpengine, interleaved, at 250 and
	# 500 calls. The per-packet steps alone are the Go benchmarks above
	# (BenchmarkTransform, BenchmarkPionSRTP in media/).
	$(GO) run ./cmd/sbc-bench -target sbc,rtpengine -calls 250 -duration 10s -srtp AES_CM_128_HMAC_SHA1_80 -repeat 2 -quiet
	$(GO) run ./cmd/sbc-bench -target sbc,rtpengine -calls 500 -duration 10s -srtp AES_CM_128_HMAC_SHA1_80 -repeat 2 -quiet
	# The kernel fast path (issue 4), across network namespaces: its machine
	# CPU per packet against a bare XDP forwarder (interleaved, means); the
	# daemon's CPU as offloaded calls grow, and the most calls at p99 < 1 ms
	# against the userspace relay and rtpengine; the most at p99 < 50 µs,
	# with the harness's own ceiling (direct); a 200,000 packets/s flood at
	# closed media ports during 500 calls.
	$(GO) run ./cmd/sbc-bench -netlab -target sbc-kernel,bare -calls 1000 -rate 500 -duration 12s -measure-after 2s -repeat 5 -quiet
	$(GO) run ./cmd/sbc-bench -netlab -sweep -target sbc-kernel,sbc,rtpengine -sweep-start 100 -max-calls 3200 -rate 500 -duration 6s -measure-after 2s -quiet
	$(GO) run ./cmd/sbc-bench -netlab -sweep -target sbc-kernel,bare,direct -sweep-start 100 -max-calls 3200 -rate 500 -duration 6s -measure-after 2s -pass-p99 50us -quiet
	$(GO) run ./cmd/sbc-bench -netlab -target sbc-kernel -calls 500 -rate 500 -duration 10s -measure-after 2s -flood-pps 200000 -flood-compare -repeat 2 -quiet
	# SMS (issue 8): 20,000 messages through the REST API (32 clients, HTTPS)
	# and the queue, the account's limit lifted, to sipp as the carrier
	# (every one must end "sent"). Webhook delivery is BenchmarkDelivery in
	# webhook/ (the Go benchmarks above).
	$(GO) run ./cmd/sbc-bench sms -messages 20000 -quiet

# generate rebuilds the eBPF objects in bpf/ from bpf/src/ (bpf2go); the
# results are committed so that go build needs no clang. Needs clang-14,
# llvm-14 and libbpf-dev, installed here when missing.
generate:
	@command -v clang-14 >/dev/null 2>&1 && [ -f /usr/include/bpf/bpf_helpers.h ] || { \
		echo "installing clang-14 llvm-14 libbpf-dev"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq clang-14 llvm-14 libbpf-dev >/dev/null; \
	}
	$(GO) generate ./bpf/ ./cmd/sbc-bench/internal/bare/

clean:
	rm -rf bin
