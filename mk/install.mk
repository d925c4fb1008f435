# make install IRIS_DIR=<IRIS installation directory>: puts libirisvip.so into $(IRIS_DIR)/bin without
# ever writing into a file that IRIS processes have mapped. The library is copied under a new, temporary
# name in the same directory and then renamed over the old one: rename(2) is atomic within a file system,
# so a process that loaded the old library keeps its pages (the old inode lives on until it unmaps it;
# no SIGBUS), and a process that loads the library afterwards gets the new one. `cp new.so bin/` instead
# truncates and rewrites the mapped file in place, and a process that touches it dies of SIGBUS.
#
#   make install IRIS_DIR=/usr/irissys                          the release build (make build)
#   make install IRIS_DIR=/usr/irissys LIB=dist/libirisvip.so   any other copy (make dist: older Linux)
#   make install IRIS_DIR=/usr/irissys INSTALL_DIR=/usr/irissys/mgr/irisvip
#                                                               another directory (the one IPM uses)
#
# Refuses, changing nothing, when IRIS_DIR has no bin/ directory, INSTALL_DIR does not exist, LIB is
# missing, is not an ELF shared object or does not export GetZFTable, or the destination is a symbolic
# link. The new file gets the old one's mode and owner (mode 0755 for a first install), never group- or
# world-writable. The previous library stays beside it as libirisvip.so.prev (a hard link: no copy) for
# a rollback: mv libirisvip.so.prev libirisvip.so.

LIB ?= $(or $(CARGO_TARGET_DIR),target)/release/libirisvip.so
INSTALL_DIR ?= $(IRIS_DIR)/bin
INSTALL_NAME ?= libirisvip.so

.PHONY: install
# Passed through the environment, not pasted into the script: a path may hold any character.
install: export IRISVIP_INSTALL_IRIS_DIR = $(IRIS_DIR)
install: export IRISVIP_INSTALL_LIB = $(LIB)
install: export IRISVIP_INSTALL_DIR = $(INSTALL_DIR)
install: export IRISVIP_INSTALL_NAME = $(INSTALL_NAME)
install:
	@set -euo pipefail; \
	fail() { echo "make install: $$*; nothing was changed" >&2; exit 2; }; \
	iris="$$IRISVIP_INSTALL_IRIS_DIR"; lib="$$IRISVIP_INSTALL_LIB"; \
	dir="$$IRISVIP_INSTALL_DIR"; name="$$IRISVIP_INSTALL_NAME"; \
	[ -n "$$iris" ] || fail "IRIS_DIR is not set: make install IRIS_DIR=<the IRIS installation directory, the one with bin/ and mgr/; iris list shows it>"; \
	[ -d "$$iris/bin" ] || fail "IRIS_DIR=$$iris has no bin/ directory: not an IRIS installation (iris list shows the directory)"; \
	[ -d "$$dir" ] || fail "INSTALL_DIR=$$dir is not a directory"; \
	case "$$name" in ""|*/*) fail "INSTALL_NAME=$$name must be a file name";; esac; \
	[ -f "$$lib" ] || fail "LIB=$$lib not found: build it (make build; make dist for older Linux) or pass LIB=<path to libirisvip.so>"; \
	[ "$$(head -c 4 -- "$$lib" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || fail "LIB=$$lib is not an ELF shared object"; \
	if command -v nm >/dev/null 2>&1; then \
		nm -D --defined-only -- "$$lib" 2>/dev/null | grep -qw GetZFTable \
			|| fail "LIB=$$lib does not export GetZFTable: it is not an IRIS callout library (libirisvip.so)"; \
	fi; \
	dest="$$dir/$$name"; \
	[ ! -L "$$dest" ] || fail "$$dest is a symbolic link: install into the directory it points to, with INSTALL_DIR=<that directory>"; \
	[ ! -d "$$dest" ] || fail "$$dest is a directory"; \
	tmp="$$(mktemp -- "$$dir/.$$name.new.XXXXXX" 2>/dev/null)" || fail "cannot create a file in $$dir (run as the owner of the IRIS installation, or as root)"; \
	trap 'rm -f -- "$$tmp"' EXIT; \
	cp -- "$$lib" "$$tmp"; \
	if [ -e "$$dest" ]; then \
		chmod --reference="$$dest" -- "$$tmp"; \
		chown --reference="$$dest" -- "$$tmp" 2>/dev/null \
			|| echo "make install: note: $$dest will belong to $$(id -un), not to its previous owner $$(stat -c %U -- "$$dest")" >&2; \
	else \
		chmod 0755 -- "$$tmp"; \
	fi; \
	chmod go-w -- "$$tmp"; \
	sync -- "$$tmp" 2>/dev/null || sync; \
	old=""; \
	if [ -e "$$dest" ]; then \
		old="$$(stat -c %i -- "$$dest")"; \
		ln -f -- "$$dest" "$$dest.prev" 2>/dev/null || echo "make install: note: no $$name.prev kept (no hard link possible here)" >&2; \
	fi; \
	mv -f -T -- "$$tmp" "$$dest"; \
	trap - EXIT; \
	cmp -s -- "$$lib" "$$dest" || { echo "make install: $$dest differs from $$lib after the rename" >&2; exit 1; }; \
	echo "installed $$lib as $$dest (inode $${old:-none} -> $$(stat -c %i -- "$$dest"))"; \
	echo "IRIS processes that already loaded the library keep the previous copy until they end; new processes load this one."; \
	if [ -n "$$old" ]; then echo "rollback: mv -f -T $$dest.prev $$dest"; fi
