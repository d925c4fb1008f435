# Benchmarks: every way of moving the VIP, against one moto and one IMDS stand-in, in one run.
# Included from the Makefile (uses its PY, deps and build). Needs root: it makes a network
# namespace (irisvip-bench-<pid>) and removes it on every exit path.
#
#   make bench        both phases:
#                     moto: 1, 4 and 16 route tables, 15 runs per contender and phase (~55 min on 2 cores, most
#                     of it aws-vpc-move-ip's `sleep 1` per table) -> bench/results.{json,md}, bench/benchmarks.png;
#                     model: every contender over HTTPS through the EC2 model (tests/support/faultproxy.py):
#                     service time 0/50/150 ms, EC2's token buckets, eventual consistency; 1, 4, 16 and 64 route
#                     tables (~35 min), then the address modes' cell: mode=private-ip and mode=eip, warm and
#                     cold, beside the route claim with 1 table (~5 min) -> bench/results-model.{json,md},
#                     bench/benchmarks-model.png; each phase's table into BENCHMARKS.md and on stdout
#   make bench-model  the model phase alone
#   make bench-model-modes
#                     the address modes' cell alone, merged into bench/results-model.json (the other cells kept
#                     as measured) and BENCHMARKS.md (~5 min at BENCH_ARGS="--model-runs 15")
#   make bench-smoke  1 run, 1 table, every contender, both phases (model: 50 ms only, plus 3 tables for floor,
#                     warm and cold with a 2 + 1/s mutating bucket: the throttled paths, and one claim per
#                     address mode, warm and cold) (~1 min): keeps the bench code from rotting
#
# BENCH_ARGS adds options (see `bench/bench.py --help`), e.g. BENCH_ARGS="--runs 20 --model-runs 9".

BENCH_AWSCLI_VENV ?= $(CURDIR)/bench/.venv-awscli
BENCH_AWSCLI := $(BENCH_AWSCLI_VENV)/bin/aws
BENCH_SMOKE_OUT ?= $(CURDIR)/target/bench-smoke
BENCH_ARGS ?=

.PHONY: bench bench-model bench-model-modes bench-smoke bench-deps

# The peers: ClusterLabs aws-vpc-move-ip (Debian resource-agents) and the AWS CLI, in a venv of
# its own (its botocore pin must not meet moto's).
bench-deps:
	@dpkg -s resource-agents >/dev/null 2>&1 || { \
		echo "installing: resource-agents"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends resource-agents; }
	@test -x $(BENCH_AWSCLI) || { \
		python3 -m venv $(BENCH_AWSCLI_VENV) && \
		$(BENCH_AWSCLI_VENV)/bin/pip install -q --disable-pip-version-check -r bench/requirements-awscli.txt; }

bench: deps build bench-deps
	# Relink the library with its symbol table, for the size breakdown per crate (not loaded at run time).
	IRISVIP_KEEP_SYMBOLS=1 cargo build --release --lib
	IRISVIP_BENCH_AWSCLI=$(BENCH_AWSCLI) $(PY) bench/bench.py $(BENCH_ARGS)

bench-model: deps build bench-deps
	IRISVIP_BENCH_AWSCLI=$(BENCH_AWSCLI) $(PY) bench/bench.py --phases model $(BENCH_ARGS)

bench-model-modes: deps build
	$(PY) bench/bench.py --phases model --model-modes-only $(BENCH_ARGS)

bench-smoke: deps build bench-deps
	IRISVIP_BENCH_AWSCLI=$(BENCH_AWSCLI) $(PY) bench/bench.py --smoke --require-all --out $(BENCH_SMOKE_OUT)
