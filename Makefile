# berth: the two commands a newcomer needs are `make demo` and `make check`.
CARGO ?= cargo
export CARGO_BUILD_JOBS ?= 2
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all build demo check check-system check-vm test lint bench fuzz clean deps install deb check-packaging

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
# Where `make install` puts things (packages: PREFIX=/usr; see packaging/).
BINDIR ?= $(PREFIX)/bin
# The full binary the `berth` front execs for verbs that need the store
# (src/cli/front.rs looks in BINDIR/../libexec/berth/).
LIBEXECDIR ?= $(PREFIX)/libexec
DATADIR ?= $(PREFIX)/share
UNITDIR ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
MANDIR ?= $(DATADIR)/man/man1
DOCDIR ?= $(DATADIR)/doc/berth
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
SYSCONFDIR ?= /etc
INSTALL ?= install

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
	$(MAKE) check-packaging
	$(MAKE) check-system

## The system tests (tests/system/README.md): release binaries in a Debian 12 guest
## booted with systemd-nspawn; the guest root filesystem is cached in /var/cache/berth-tests.
check-system:
	$(CARGO) test --release --test system -- --test-threads=2

## Scenarios 1-3, the update gate and health checks in a qemu (TCG) guest with its own
## kernel and cgroup v2; one guest at a time (each boot is about 22 s under TCG). Not
## part of `make check`.
check-vm:
	./scripts/deps.sh --vm
	BERTH_TEST_VM=1 $(CARGO) test --release --test system -- --test-threads=1 system_vm_

## Benchmarks against the peers; writes BENCHMARKS.md sections.
bench: deps build
	./benches/pull.sh
	./benches/run.sh
	./benches/startpath.sh
	./benches/install.sh
	./benches/boot.sh

## Fuzzing bench job (issue 15): every cargo-fuzz target in fuzz/ for FUZZ_SECONDS
## of CPU each (default 600), one at a time, niced; writes benches/results/fuzz.md.
## Needs nightly and `cargo install cargo-fuzz`. Not part of `make check`.
fuzz:
	./benches/fuzz.sh

clean:
	$(CARGO) clean

## Installs the release build, berth's units, templates, man pages, completions
## and docs under $(DESTDIR)$(PREFIX) (no apt: packages build with this rule).
install: build
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR)/berth $(DESTDIR)$(UNITDIR) $(DESTDIR)$(TMPFILESDIR) \
	  $(DESTDIR)$(DATADIR)/berth/templates $(DESTDIR)$(MANDIR) $(DESTDIR)$(DOCDIR) \
	  $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/berth/manifest.d
	$(INSTALL) -m 0755 $(TARGET_DIR)/release/berth $(TARGET_DIR)/release/berth-run $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 0755 $(TARGET_DIR)/release/berth-core $(DESTDIR)$(LIBEXECDIR)/berth/
	for u in units/*.service units/*.timer; do \
	  sed 's|/usr/bin/berth|$(BINDIR)/berth|g' $$u > $(DESTDIR)$(UNITDIR)/$${u#units/} && \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$${u#units/} || exit 1; \
	done
	$(INSTALL) -m 0644 units/berth.tmpfiles $(DESTDIR)$(TMPFILESDIR)/berth.conf
	$(INSTALL) -m 0644 templates/* $(DESTDIR)$(DATADIR)/berth/templates/
	$(TARGET_DIR)/release/berth generate man $(DESTDIR)$(MANDIR)
	chmod 0644 $(DESTDIR)$(MANDIR)/berth*.1
	$(TARGET_DIR)/release/berth generate completions bash > $(DESTDIR)$(BASHCOMPDIR)/berth
	$(TARGET_DIR)/release/berth generate completions zsh > $(DESTDIR)$(ZSHCOMPDIR)/_berth
	$(TARGET_DIR)/release/berth generate completions fish > $(DESTDIR)$(FISHCOMPDIR)/berth.fish
	chmod 0644 $(DESTDIR)$(BASHCOMPDIR)/berth $(DESTDIR)$(ZSHCOMPDIR)/_berth $(DESTDIR)$(FISHCOMPDIR)/berth.fish
	$(INSTALL) -m 0644 README.md ARCHITECTURE.md CHANGELOG.md docs/*.md $(DESTDIR)$(DOCDIR)/

## Builds target/debian/berth_$(VERSION)_amd64.deb with dpkg-buildpackage (see packaging/).
deb:
	./packaging/build-deb.sh

## Checks the packaging: the RPM spec parses, the .deb builds, lintian.
check-packaging: deb
	./packaging/verify-units.sh target/debian/build/berth-$(VERSION)/debian/berth
	rpmspec -P packaging/berth.spec >/dev/null
	@test "$$(rpmspec -q --srpm --qf '%{version}' packaging/berth.spec)" = "$(VERSION)" \
	  || { echo "packaging/berth.spec: Version is not $(VERSION) (Cargo.toml)" >&2; exit 1; }
	@if command -v lintian >/dev/null; then lintian --fail-on error target/debian/berth_$(VERSION)_*.deb; \
	  else echo "lintian not installed: skipped"; fi
