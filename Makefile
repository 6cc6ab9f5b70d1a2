# vfio.migration — `make demo` runs the readiness demo, `make test` runs every test.
# Both install what they need on a fresh Debian machine (root for apt).

PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := build/.stamp
APT_PACKAGES := fuse3 mdevctl chromium qemu-system-x86 linux-image-amd64 linux-headers-amd64 \
                linux-source-6.1 busybox-static openssh-server openssh-client kmod cpio xz-utils \
                zstd patch make gcc util-linux redis-server
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: demo test deps venv apt backports unit kernel-lab migration-lab lint bench clean

demo: deps
	$(PY) demo/run_demo.py

test: deps
	$(PY) -m pytest $(PYTEST_ARGS)

deps: $(STAMP)-apt $(STAMP)-backports $(STAMP)-venv

venv: $(STAMP)-venv
$(STAMP)-venv: requirements-dev.txt
	@mkdir -p build
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

apt: $(STAMP)-apt
$(STAMP)-apt:
	@mkdir -p build
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@touch $@

# The migration lab's kernel 6.12, QEMU 10 and libvirt 11.3 from bookworm-backports (kernel metas held)
# (adds a deb822 sources file for the suite when none lists it); checks versions, so it is idempotent.
backports: $(STAMP)-backports
$(STAMP)-backports: $(STAMP)-apt tests/kernel/lab612.py
	$(SUDO) $(PYTHON) tests/kernel/lab612.py packages
	@touch $@

# unit tests need no root, FUSE or apt packages: the venv is enough
unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# ansible-test sanity and ansible-lint (production profile), as CI runs them
lint: deps
	$(PY) -m pytest tests/sanity $(PYTEST_ARGS)

kernel-lab: deps
	$(PY) -m pytest tests/kernel -m kernel $(PYTEST_ARGS)

# The 6.12 migration lab alone: real VMs, real live migrations against the matrix.
migration-lab: deps
	$(PY) -m pytest tests/kernel/test_migration_lab.py -m kernel $(PYTEST_ARGS)

# Fleet-scale benchmarks (BENCHMARKS.md): about 20 min on 2 cores; BENCH_ARGS=--quick for a short run.
BENCH_ARGS ?=
bench: deps
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	-fusermount3 -uz build/demo/mnt 2>/dev/null
	rm -rf build vfio-migration-report
