# irisvip — build, test and demo. Every target installs what it needs, idempotently.
#
#   make demo    failover A -> B -> release on the embedded default (moto + IMDSv2 stand-ins),
#                the library loaded through the callout host the way IRIS loads it
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

# One release build: `cargo test --release` compiles the cdylib the tests load and the
# zfhost callout host with the same artifacts as the tests themselves.
test: deps
	cargo fmt --check
	cargo test --release
	$(PY) tests/objectscript/parse_check.py objectscript
	$(PY) -m unittest discover -s tests/objectscript
	$(VENV)/bin/cfn-lint examples/cloudformation.yaml
	$(PY) -m json.tool examples/iam-policy.json >/dev/null

demo: deps build
	$(PY) tests/support/demo.py

lint: apt
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings

clean:
	cargo clean
	rm -rf $(VENV)

# Lab, benchmarks and other optional targets live in their own fragments.
-include mk/*.mk
