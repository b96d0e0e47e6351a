# xvtep: `make demo` runs the main job, `make test` runs every test. Both install what is
# missing first (scripts/setup.sh).

CARGO ?= cargo

.PHONY: all setup build test demo demo-replay demo-evpn bench bench-live release fuzz soak fmt clean

all: build

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace

# The fuzz smoke run first, so that the test summary is the last line printed.
test: setup
	@scripts/fuzz.sh 12
	@scripts/test.sh

# Longer fuzzing: `make fuzz FUZZ_SECONDS=600` (per target).
FUZZ_SECONDS ?= 300
fuzz: setup
	@scripts/fuzz.sh $(FUZZ_SECONDS)

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

release: setup
	$(CARGO) build --profile dist -p xvtep
	@ls -l target/dist/xvtep | awk '{printf "target/dist/xvtep: %.1f MiB\n", $$5 / 1048576}'
	@ldd target/dist/xvtep

# Soak: SOAK_SECONDS (default 600) at the maximum rate with FDB churn; RSS must stay flat.
SOAK_SECONDS ?= 600
soak: build
	SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO) test --release -p xvtep --test soak -- --ignored --nocapture

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
