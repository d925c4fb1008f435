"""The ship check (tests/dist/glibc_floor.sh) run on the test build, so `make dist`'s last step can't rot.

The library is $IRISVIP_LIB, else $CARGO_TARGET_DIR/release/libirisvip.so, else target/release/libirisvip.so
(`make test` builds it first).
"""

import os
import re
import subprocess
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "dist" / "glibc_floor.sh"


def library():
    if os.environ.get("IRISVIP_LIB"):
        return Path(os.environ["IRISVIP_LIB"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "release" / "libirisvip.so"


def run(*args):
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def lower(version):
    """The version just below `version` in its last component (2.25 -> 2.24), or None."""
    parts = [int(p) for p in version.split(".")]
    if parts[-1] == 0:
        return None
    parts[-1] -= 1
    return ".".join(map(str, parts))


class GlibcFloor(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lib = library()
        if not cls.lib.is_file():
            raise AssertionError(f"{cls.lib} is missing: build it first (make build)")
        first = run(cls.lib, "99.0")
        if first.returncode != 0:
            raise AssertionError(f"the test build fails the check with no glibc limit: {first.stderr}")
        m = re.fullmatch(r"glibc floor (\d+\.\d+(?:\.\d+)?) <= 99\.0; exports ok\n", first.stdout)
        if not m:
            raise AssertionError(f"unexpected report: {first.stdout!r}")
        cls.floor = m.group(1)
        print(f"\ntest build {cls.lib}: glibc floor {cls.floor}")

    def test_passes_at_its_own_floor(self):
        r = run(self.lib, self.floor)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"glibc floor {self.floor} <= {self.floor}", r.stdout)

    def test_fails_below_its_floor_and_names_the_symbols(self):
        below = lower(self.floor)
        if below is None:
            self.skipTest(f"no version below {self.floor} in its last component")
        r = run(self.lib, below)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(f"glibc floor {self.floor} > {below}", r.stderr)
        # At least one symbol that needs the floor is named.
        self.assertRegex(r.stderr, r"\n  \S+")

    def test_a_library_without_the_exports_fails(self):
        # libc itself: glibc symbols, but no GetZFTable.
        libc = next((p for p in (Path("/lib/x86_64-linux-gnu/libc.so.6"), Path("/lib64/libc.so.6")) if p.exists()), None)
        if libc is None:
            self.skipTest("no libc.so.6 at the usual paths")
        r = run(libc, "99.0")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("does not export: GetZFTable", r.stderr)

    def test_usage_errors(self):
        self.assertEqual(run().returncode, 2)
        self.assertEqual(run(self.lib, "two.six").returncode, 2)
        self.assertEqual(run(REPO / "no-such.so", "2.26").returncode, 2)
        self.assertEqual(run(SCRIPT, "2.26").returncode, 2)  # not ELF


if __name__ == "__main__":
    unittest.main()
