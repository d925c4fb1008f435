#!/usr/bin/env bash
# glibc_floor.sh LIB MAX_GLIBC: the ship check of a callout library.
#
# Prints the highest GLIBC_ symbol version LIB needs (its glibc floor: the oldest glibc it loads on)
# and fails when that is newer than MAX_GLIBC, or when LIB does not export what IRIS looks up
# (GetZFTable, and the table's entries). Needs objdump (binutils).
#
#   tests/dist/glibc_floor.sh dist/libirisvip.so 2.26
#   exit 0: "glibc floor 2.25 <= 2.26; exports ok"   exit 1: too new or an export missing   exit 2: usage
set -euo pipefail

usage() { echo "usage: $0 LIB MAX_GLIBC (for example: $0 dist/libirisvip.so 2.26)" >&2; exit 2; }
[ $# -eq 2 ] || usage
lib=$1 max=$2
[[ $max =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]] || { echo "MAX_GLIBC '$max' is not a version such as 2.26" >&2; exit 2; }
[ -f "$lib" ] || { echo "$lib: no such file (build it first: make build or make dist)" >&2; exit 2; }
command -v objdump >/dev/null || { echo "objdump not found: install binutils" >&2; exit 2; }

dynsyms=$(objdump -T "$lib") || { echo "$lib: objdump cannot read it (not an ELF shared object?)" >&2; exit 2; }

# Every GLIBC_x.y[.z] the library references, highest last (sort -V orders versions numerically).
floor=$(grep -o 'GLIBC_[0-9][0-9.]*' <<<"$dynsyms" | sed 's/^GLIBC_//; s/\.$//' | sort -uV | tail -n 1)
if [ -z "$floor" ]; then
    echo "$lib: references no GLIBC_ symbol version (not linked against glibc?)" >&2
    exit 1
fi

status=0
highest=$(printf '%s\n%s\n' "$floor" "$max" | sort -V | tail -n 1)
if [ "$highest" != "$max" ]; then
    echo "glibc floor $floor > $max: $lib needs a newer glibc than allowed; symbols that need it:" >&2
    # objdump -T writes the version as "GLIBC_2.34" or "(GLIBC_2.34)"; 2.3 must not match 2.34.
    grep -E "GLIBC_${floor//./\\.}([^0-9.]|\$)" <<<"$dynsyms" | awk '{print "  " $NF}' >&2 || true
    status=1
fi

missing=""
for sym in GetZFTable ZFInit ZFUnload vip_claim vip_release vip_status vip_check; do
    # An exported (defined, .text) dynamic symbol, not an undefined reference.
    grep -Eq "[[:space:]]\.text[[:space:]].*[[:space:]]$sym\$" <<<"$dynsyms" || missing="$missing $sym"
done
if [ -n "$missing" ]; then
    echo "$lib does not export:$missing" >&2
    status=1
fi

if [ $status -eq 0 ]; then
    echo "glibc floor $floor <= $max; exports ok"
fi
exit $status
