# berth: the two commands a newcomer needs are `make demo` and `make check`.
CARGO ?= cargo
export CARGO_BUILD_JOBS ?= 2
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all build demo check check-system test lint bench clean deps

all: build

deps:
	./scripts/deps.sh

build:
	$(CARGO) build --release

## Sets up this machine (apt packages, build) and runs berth's main job end to end.
demo: deps build
	./scripts/demo.sh

## Runs every test tier that this machine can run: lint, unit, CLI and privileged.
check: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --quiet
	$(CARGO) test --all-targets -- --test-threads=2 --skip system_scenario
	$(MAKE) check-system

## The system tests (tests/system/README.md): release binaries in a Debian 12 guest
## booted with systemd-nspawn; the guest root filesystem is cached in /var/cache/berth-tests.
check-system:
	$(CARGO) test --release --test system -- --test-threads=2

## Benchmarks against the peers; writes BENCHMARKS.md sections.
bench: deps build
	./benches/pull.sh
	./benches/run.sh
	./benches/install.sh

clean:
	$(CARGO) clean
