# Fuzzing (docs/reliability.md). `make test` runs fuzz-replay (the corpus, stable cargo test)
# and the 10^5-input ABI driver; the long runs below are by hand or on a schedule.
#
#   make fuzz           fuzz-abi + fuzz-targets
#   make fuzz-abi       random bytes through the C ABI (zfhost), IRISVIP_FUZZ_INPUTS inputs (10^6)
#   make fuzz-targets   cargo fuzz (libFuzzer) on each target for FUZZ_SECONDS (default 120 s each)
#   make fuzz-replay    the committed corpus through the same checks, stable `cargo test`, no libFuzzer
#
# cargo-fuzz needs unstable compiler flags only for a sanitizer: FUZZ_SANITIZER=none (default)
# uses -Cpasses=sancov-module and -Cllvm-args only, which the stable toolchain accepts;
# FUZZ_SANITIZER=address adds -Zsanitizer=address and so sets RUSTC_BOOTSTRAP=1.
# The fuzz crate builds in its own target directory (FUZZ_TARGET_DIR), whatever
# CARGO_TARGET_DIR says, so the main build is never invalidated.

IRISVIP_FUZZ_INPUTS ?= 1000000
FUZZ_SECONDS ?= 120
FUZZ_SANITIZER ?= none
FUZZ_TARGETS ?= config_parse render_bounded
FUZZ_TARGET_DIR ?= $(CURDIR)/fuzz/target
CARGO_FUZZ_VERSION ?= 0.13.2
FUZZ_ENV := CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) $(if $(filter none,$(FUZZ_SANITIZER)),,RUSTC_BOOTSTRAP=1)

.PHONY: fuzz fuzz-abi fuzz-targets fuzz-replay fuzz-tools

fuzz: fuzz-abi fuzz-targets

# One warm callout host, 10^6 seeded random inputs (IRISVIP_FUZZ_SEED replays a run).
fuzz-abi: deps
	IRISVIP_FUZZ_INPUTS=$(IRISVIP_FUZZ_INPUTS) cargo test --release --test callout fuzz_abi::arbitrary_bytes_through_the_c_abi -- --nocapture

fuzz-tools:
	@cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION)

# New corpus entries go to $(FUZZ_TARGET_DIR)/corpus/<target>; fuzz/corpus/<target> (committed
# seeds) is only read. A crash lands in fuzz/artifacts/<target>/ and fails the target.
fuzz-targets: fuzz-tools
	@failed=""; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_TARGET_DIR)/corpus/$$t; \
		echo "== cargo fuzz run $$t: $(FUZZ_SECONDS) s, sanitizer $(FUZZ_SANITIZER)"; \
		$(FUZZ_ENV) cargo fuzz run -O -s $(FUZZ_SANITIZER) $$t \
			$(FUZZ_TARGET_DIR)/corpus/$$t fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
			|| failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz targets failed:$$failed (inputs in fuzz/artifacts/)"; exit 1; fi

fuzz-replay:
	CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) cargo test --release --manifest-path fuzz/Cargo.toml
