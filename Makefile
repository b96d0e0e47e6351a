# xvtep: `make demo` runs the main job, `make test` runs every test. Both install what is
# missing first (scripts/setup.sh).

CARGO ?= cargo

.PHONY: all setup build test vm-test demo demo-replay demo-evpn bench bench-live release deb fuzz soak fmt clean

all: build

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace

# The fuzz smoke run first, so that the test summary is the last line printed.
test: setup
	@scripts/fuzz.sh 12
	@scripts/test.sh

# The guest test bed: Debian 12's kernel (6.1) in QEMU, two xvtep hosts inside (root; part of
# `make test`). See scripts/vm-test.sh.
vm-test: build
	@scripts/vm-test.sh

# Longer fuzzing: `make fuzz FUZZ_SECONDS=600` (per target), without a sanitizer by default
# (see scripts/fuzz.sh; FUZZ_SANITIZER=address to keep it).
FUZZ_SECONDS ?= 300
FUZZ_SANITIZER ?= none
fuzz: setup
	@FUZZ_SANITIZER=$(FUZZ_SANITIZER) scripts/fuzz.sh $(FUZZ_SECONDS)

demo: build
	@scripts/demo.sh

demo-replay: build
	@scripts/demo-replay.sh

# EVPN with FRR: three hosts, two running xvtep in [kernel] mode (root).
demo-evpn: build
	@scripts/demo-evpn.sh

bench: setup
	$(CARGO) bench -p xvtep-benches

bench-live: build
	target/release/xvtep bench --duration 3 --rounds 3 --out-dir target/bench

# One stripped binary with the XDP program embedded; STATIC=1: no dynamic dependencies at all.
STATIC ?= 0
release: setup
	@STATIC=$(STATIC) scripts/release.sh

# The Debian package (target/deb/xvtep_VERSION_ARCH.deb), checked with lintian.
deb: setup
	@STATIC=$(STATIC) scripts/deb.sh

# Soak: SOAK_SECONDS (default 600) at the maximum rate with FDB churn; RSS must stay flat.
SOAK_SECONDS ?= 600
soak: build
	SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO) test --release -p xvtep --test soak -- --ignored --nocapture

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
