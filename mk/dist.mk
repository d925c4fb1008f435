# make dist: a release .so that loads on every Linux IRIS supports (glibc >= 2.26: RHEL 8,
# Ubuntu 20.04, Amazon Linux 2), built with cargo-zigbuild + zig from PyPI, stripped, with a
# checksum, and checked for the highest GLIBC_ symbol version it needs. Built with the `dist`
# profile (Cargo.toml: release + fat LTO, one codegen unit, opt-level "s"): the smallest library,
# at the price of a slow link that the test builds do not pay.

DIST_GLIBC ?= 2.26
DIST_TRIPLE := x86_64-unknown-linux-gnu
DIST_DIR ?= dist

.PHONY: dist
dist: apt venv
	$(VENV)/bin/pip install -q --disable-pip-version-check cargo-zigbuild==0.24.0 ziglang==0.17.0
	PATH="$(VENV)/bin:$$PATH" cargo zigbuild --profile dist --lib --target $(DIST_TRIPLE).$(DIST_GLIBC)
	mkdir -p $(DIST_DIR)
	cp "$${CARGO_TARGET_DIR:-target}/$(DIST_TRIPLE)/dist/libirisvip.so" $(DIST_DIR)/libirisvip.so
	strip --strip-unneeded $(DIST_DIR)/libirisvip.so
	cd $(DIST_DIR) && sha256sum libirisvip.so > libirisvip.so.sha256
	tests/dist/glibc_floor.sh $(DIST_DIR)/libirisvip.so $(DIST_GLIBC)
