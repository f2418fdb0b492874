# Debate — the two commands a newcomer needs are `make run` and `make test`.
# Both install the Debian packages they need first (apt-get, as root).

GO        ?= go
BIN       := bin/debate
CACHE_DIR ?= $(CURDIR)/.cache/packages
OUT_DIR   ?= $(CURDIR)/out

# Tools the builder, the sandbox, the boot test and the test database need.
DEB_PACKAGES := mmdebstrap squashfs-tools xorriso isolinux syslinux-common \
	grub-efi-amd64-signed shim-signed mtools dosfstools e2fsprogs \
	qemu-system-x86 ovmf bubblewrap systemd-container \
	postgresql ca-certificates wrk

.PHONY: all deps build run serve test bench bench-build bench-builds bench-http bench-check check-catalog vet fmt clean

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "run as root (or install these by hand): $$missing" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/debate

# The main job: build the minimal example into an ISO, boot it in QEMU, then serve the API
# over HTTPS (https://localhost:8443) until Ctrl-C. RUN_SERVE=0 stops after the boot test.
RUN_SERVE ?= 1
run: deps build
	$(BIN) build examples/minimal.yaml -o $(OUT_DIR) --cache-dir $(CACHE_DIR)
	$(BIN) boot-test $(OUT_DIR)/minimal.iso --firmware bios
	@if [ "$(RUN_SERVE)" = 1 ]; then $(MAKE) --no-print-directory serve; fi

# The API server, reachable from a browser at https://localhost:8443 (http://localhost:8080
# redirects there). A private PostgreSQL cluster lives in .work/pg (kept between runs;
# `make clean` removes it), migrations are applied at start, and the certificate comes
# from a local CA in .work/state/ca: trust ca.pem there to silence the browser warning.
# The database is backed up into .work/backups (daily, verified weekly; at start when none
# is there yet). Ctrl-C drains the server and stops the database. Extra flags: make serve
# SERVE_FLAGS=...
SERVE_FLAGS ?=
serve: deps build
	$(GO) build -o bin/devdb ./tools/devdb
	bin/devdb --dir .work/pg -- $(BIN) serve --migrate-on-start --tls-self-signed \
		--state-dir .work/state --listen localhost:8443 --http-listen localhost:8080 \
		--workers 1 --cache-dir $(CACHE_DIR) --backup-dir .work/backups \
		--log-format text $(SERVE_FLAGS)

# Every test, against real tools: ISO builds share one package cache for the run.
# Under CI=true, tests whose tools are missing fail instead of skipping.
test: deps
	$(GO) vet ./...
	DEBATE_TEST_CACHE=$(CACHE_DIR) $(GO) test -p 1 -timeout 45m -count=1 ./...

bench: bench-build bench-builds bench-http

bench-build: deps build
	DEBATE_TEST_CACHE=$(CACHE_DIR) $(GO) test -run '^$$' -bench BenchmarkBuild -benchtime 1x -timeout 60m ./internal/builder/

# HTTP load benchmark (not a test): debate serve over TLS on a private PostgreSQL, driven
# by a separate load process with 100 connections for 30 s per route. Figures and the
# exact command go to docs/benchmarks.md. Run it on an otherwise idle machine.
bench-http: deps build
	$(GO) build -o bin/benchhttp ./tools/benchhttp
	bin/benchhttp --server $(BIN) $(BENCH_HTTP_FLAGS)

# Build service benchmark (not a test; root, like debate build): debate serve --workers 1
# over TLS on a private PostgreSQL delivers examples/minimal.yaml, then POST → first event,
# cache-hit latency percentiles (target p99 < 20 ms) and ISO download throughput against
# the disk's read speed in the same run. Figures go to docs/benchmarks.md.
bench-builds: deps build
	$(GO) build -o bin/benchbuilds ./tools/benchbuilds
	bin/benchbuilds --server $(BIN) --cache-dir $(CACHE_DIR) $(BENCH_BUILDS_FLAGS)

# Objection checking speed (not a test): full bookworm index load time and memory, then
# p50/p95/p99 of checking a typical recipe. Figures go to docs/benchmarks.md.
bench-check:
	$(GO) run ./tools/benchcheck -index-cache $(CACHE_DIR)/index

# Deliver one recipe per platform of the layer catalog (long: one desktop ISO each; run on
# request, not by make test). Recipes are composed into out/catalog/PLATFORM.json first.
check-catalog: deps build
	$(GO) run ./tools/catalogrecipes -o $(OUT_DIR)/catalog
	for r in $(OUT_DIR)/catalog/*.json; do \
		$(BIN) check $$r --index-cache $(CACHE_DIR)/index && \
		$(BIN) build $$r -o $(OUT_DIR)/catalog --cache-dir $(CACHE_DIR) || exit 1; \
	done

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin out .work
