#!/usr/bin/env python3
"""Where the bytes of libirisvip.so go: sections of a stripped copy, symbols per crate.

    sosize.py [path/to/libirisvip.so] [--json]

The unstripped library still has its symbol table: `nm -S -C` gives each function's and
constant's size, attributed to a crate by the first path component of its demangled name (a
generic from core/alloc/std instantiated over another crate's type goes to that crate, as
`cargo bloat --crates` would roughly do); symbols without a Rust path are C (ring's
cryptography, the only C in the library).
"""

import collections
import json
import os
import re
import subprocess
import sys
import tempfile

from common import release

STD = {"core", "alloc", "std", "compiler_builtins", "hashbrown", "std_detect", "panic_unwind", "rustc_demangle"}
EXPORTS = {"GetZFTable", "ZFInit", "ZFUnload", "vip_claim", "vip_release", "vip_status", "vip_check"}
INNER = re.compile(r"<[&*\[ ]*(?:mut |const |dyn )?([a-z_][a-z0-9_]*)::")


def crate_of(name):
    if "::" not in name:
        if name in EXPORTS:
            return "irisvip"
        if name.startswith("__"):
            return "compiler_builtins"
        # ring's C and assembly (ring_core_* and static symbols): nothing else in the library is C.
        return "ring (C, asm)"
    s = name.lstrip("<&*")
    if s.startswith("dyn "):
        s = s[4:]
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", s)
    if not m:
        return "[other]"
    crate = m.group(1)
    if crate in STD:
        for inner in INNER.findall(name):
            if inner not in STD:
                return inner
        return "std/core/alloc"
    return crate


def sections(path):
    out = subprocess.run(["size", "-A", path], check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith("."):
            rows[parts[0]] = int(parts[1])
    return rows


def crates(path):
    out = subprocess.run(["nm", "-S", "-C", "--defined-only", path], check=True, capture_output=True,
                         text=True).stdout
    sizes = collections.Counter()
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4 or parts[2].lower() not in "tTrRdDbBvVwW":
            continue
        try:
            size = int(parts[1], 16)
        except ValueError:
            continue
        sizes[crate_of(parts[3])] += size
    return sizes


def analyse(path):
    with tempfile.TemporaryDirectory() as d:
        stripped = os.path.join(d, "stripped.so")
        subprocess.run(["strip", "--strip-all", "-o", stripped, path], check=True)
        return {
            "path": path,
            "bytes": os.path.getsize(path),
            "stripped_bytes": os.path.getsize(stripped),
            "sections": sections(stripped),
            "crates": dict(crates(path).most_common()),
        }


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    path = args[0] if args else release("libirisvip.so")
    a = analyse(path)
    if "--json" in sys.argv:
        json.dump(a, sys.stdout, indent=1)
        print()
        return
    mib = 1024 * 1024
    print(f"{path}: {a['bytes'] / mib:.1f} MiB, stripped {a['stripped_bytes'] / mib:.1f} MiB")
    for k, v in sorted(a["sections"].items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {k:<20} {v / mib:6.2f} MiB")
    total = sum(a["crates"].values())
    print(f"symbols by crate ({total / mib:.1f} MiB attributed):")
    for k, v in list(a["crates"].items())[:20]:
        print(f"  {k:<28} {v / mib:6.2f} MiB  {100 * v / total:5.1f}%")


if __name__ == "__main__":
    main()
