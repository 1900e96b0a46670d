# SPDX-License-Identifier: GPL-2.0
#
# rloop: the loop block driver in Rust, built out of tree.
#
#   make demo        set up, build, and show the driver in a guest
#                    (KERNEL=debian: on Debian's stock 7.3 kernel, as check)
#   make check-quick host tests and one boot of the core guest tests
#   make check       set up, build, and run every test (what CI runs)
#   make check-long  every test at full size, for before a release
#   make check-stack the stacked topologies and the deepest stack, C and ours
#   make bench       the C loop.ko against ours in the guest (BENCHMARKS.md)
#
#   make             build loop.ko against KDIR (default: the cached test kernel)
#   make kdir FLAVOUR=test|bench   print (building if needed) a kernel tree
#   make rustfmt | clippy | doc | clean | modules_install
#
# Kbuild, not this file, lists the module's objects.

FLAVOUR ?= test
# Built on first use only, so "make clean" never builds a kernel.
KDIR ?= $(shell scripts/build-kernel $(FLAVOUR))
KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=1
export PATH := /usr/lib/llvm-19/bin:$(PATH)

.PHONY: all modules clean modules_install kdir setup rustfmt rustfmtcheck clippy doc \
	host-test demo check check-quick check-long check-stack bench

all: modules

modules:
	+$(KMAKE) modules

clean:
	+[ -z "$(wildcard $(HOME)/.cache/rloop/kernel/$(FLAVOUR)-*/.built)" ] || $(KMAKE) clean
	rm -rf target

modules_install:
	+$(KMAKE) modules_install

kdir:
	@scripts/build-kernel $(FLAVOUR)

setup:
	scripts/setup

# Formatting: the module with the kernel's .rustfmt.toml, the host crate
# with cargo's.
RUSTFMT_KERNEL = rustfmt --edition 2021 --config-path $(KDIR)/source/.rustfmt.toml src/rloop.rs
rustfmt:
	$(RUSTFMT_KERNEL)
	cargo fmt
rustfmtcheck:
	$(RUSTFMT_KERNEL) --check
	cargo fmt --check

# clippy through the kernel's CLIPPY=1, warnings as errors; the host crate
# through cargo. The changed command line makes Kbuild rebuild the crate.
# incompatible_msrv (which the kernel allows for its own code): the module
# must build with the kernel's minimum rustc, 1.85 (its .clippy.toml), as
# Debian's 7.3 kernel was built with 1.85.1 (scripts/build-debian); the
# host crate's rust-version does the same for the files it shares.
clippy:
	+$(KMAKE) CLIPPY=1 KRUSTFLAGS="-Dwarnings -Wclippy::incompatible_msrv" modules
	cargo clippy --locked --quiet --all-targets -- -D warnings

# rustdoc of the pure logic the host crate shares with the module, and of
# the test tools, warnings as errors.
doc:
	RUSTDOCFLAGS=-Dwarnings cargo doc --locked --quiet --no-deps

host-test:
	cargo test --locked --quiet

# The kernel the guest boots: test (the debug kernel built here, the
# default) or debian (Debian's stock 7.3 kernel, scripts/build-debian).
KERNEL ?= test
demo: setup
	KERNEL=$(KERNEL) scripts/demo

# The three tiers of scripts/check (README.md, "Tests"). DRIVER=c runs the
# guest suite on the C loop.ko, DRIVER=both on both.
DRIVER ?= rloop
check: setup
	DRIVER=$(DRIVER) KERNEL=$(KERNEL) TIER=check scripts/check
check-quick: setup
	DRIVER=$(DRIVER) KERNEL=$(KERNEL) TIER=quick scripts/check
check-long: setup
	DRIVER=$(DRIVER) KERNEL=$(KERNEL) TIER=long scripts/check
# Both drivers unless DRIVER is given: the point is the comparison.
check-stack: setup
	DRIVER=$(if $(filter command line environment,$(origin DRIVER)),$(DRIVER),both) TIER=stack scripts/check

# The benchmark, in its own boot of the bench kernel: not part of check.
bench:
	scripts/bench
