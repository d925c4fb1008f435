# irisvip — build, test and demo. Every target installs what it needs, idempotently.
#
#   make demo    the failover lab, scenarios 1-2: real packets between network namespaces, moto +
#                IMDSv2 stand-ins, the library loaded through the callout host the way IRIS loads
#                it (falls back to the loopback demo where namespaces can't be created)
#   make lab     all lab scenarios, repeated, with a plot (mk/lab.mk)
#   make test    unit + ABI + scenario tests (one release build shared by tests and the .so)
#   make build   target/release/libirisvip.so
#   make lint    rustfmt + clippy -D warnings

SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
APT_PACKAGES := libclang-dev iproute2 binutils
export IRISVIP_PYTHON := $(PY)

.PHONY: all deps apt venv build test demo lint clean

all: build

deps: apt venv

# System packages: bindgen needs libclang; checked first so a warm machine asks nothing.
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then missing="$$missing python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Python venv with moto's EC2 server and the ObjectScript grammars (tests and demo only).
venv: $(VENV)/.installed
$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
	touch $@

build: apt
	cargo build --release --lib --examples

# One release build of the dependencies: `cargo build --release` makes the cdylib the tests
# load (cargo test alone builds only the rlib), the CLI and the zfhost callout host; `cargo test
# --release` then reuses every compiled dependency.
test: deps
	cargo fmt --check
	cargo build --release --lib --bins --examples
	cargo test --release
	$(PY) tests/objectscript/parse_check.py objectscript
	$(PY) -m unittest discover -s tests/objectscript
	$(PY) -m unittest discover -s tests/install -v
	$(PY) -m unittest discover -s tests/support -p 'test_*.py' -v
	$(PY) -m unittest discover -s tests/lab -v
	$(VENV)/bin/cfn-lint examples/cloudformation.yaml
	$(PY) -m json.tool examples/iam-policy.json >/dev/null
	$(PY) -m unittest discover -s tests/examples -v
	$(PY) -m unittest discover -s tests/dist -v
	$(MAKE) --no-print-directory fuzz-replay
	$(MAKE) --no-print-directory bench-smoke

# The main job: the failover lab (real packets between network namespaces, scenarios 1-2);
# where namespaces can't be made (not root, no CAP_NET_ADMIN) the loopback demo instead.
demo: deps build
	@$(PY) lab/lab.py --scenarios 1,2 --repeat 1; rc=$$?; \
	if [ $$rc -eq 3 ]; then \
		echo "demo: no network namespaces here; running the loopback demo instead"; \
		$(PY) tests/support/demo.py; \
	else exit $$rc; fi
	@echo; echo "The full lab (scenarios 1-6, repeated, plot): make lab; options: lab/lab.py --help, lab/README.md"

lint: apt
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings

clean:
	cargo clean
	rm -rf $(VENV)

# Lab, benchmarks and other optional targets live in their own fragments.
-include mk/*.mk
