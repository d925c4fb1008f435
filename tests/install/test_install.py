"""Tests of `make install` (mk/install.mk): the library is replaced by a rename, never rewritten in place.

Run: python -m unittest discover -s tests/install -v

The libraries installed are small stand-ins compiled here with cc (a shared object exporting GetZFTable,
which is all `make install` looks for), in a stand-in IRIS directory (bin/ and mgr/) under a temporary
directory. One test also installs the real release build when one exists. A reader process maps the
installed library and reads it after the install: it must see the old bytes and live; the control test
shows that the same reader dies of SIGBUS when the file is overwritten in place, as `cp` does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NAME = "libirisvip.so"

# Maps the whole file, says so, waits for a line on stdin, then reads every page of the mapping and
# prints its SHA-256. A page beyond the end of a file that shrank meanwhile raises SIGBUS.
READER = r"""
import hashlib, mmap, sys
with open(sys.argv[1], "rb") as handle:
    mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
print("mapped", len(mapped), flush=True)
sys.stdin.readline()
print(hashlib.sha256(mapped[:]).hexdigest(), flush=True)
"""

SOURCES = {
    # Large: 256 KiB of read-only data, so that a shorter replacement leaves mapped pages past its end.
    "v1": "int GetZFTable(void) { return 1; }\n__attribute__((used)) const char pad[262144] = {1};\n",
    "v2": "int GetZFTable(void) { return 2; }\n",
    "notcallout": "int something_else(void) { return 0; }\n",
}


def sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def snapshot(directory: str) -> dict:
    """Every entry under directory: name -> (inode, size, mode, mtime), symlinks not followed."""
    found = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(root, name)
            info = os.lstat(path)
            found[os.path.relpath(path, directory)] = (info.st_ino, info.st_size, info.st_mode, info.st_mtime_ns)
    return found


def make_install(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "CARGO_TARGET_DIR")}
    environment.update(env or {})
    return subprocess.run(
        ["make", "--no-print-directory", "-s", "-C", REPO, "install", *args],
        capture_output=True, text=True, env=environment, check=False, timeout=120,
    )


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.build = tempfile.TemporaryDirectory()
        cls.libs = {}
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            raise AssertionError("cc is needed to build the stand-in libraries (it is there wherever cargo links)")
        for name, code in SOURCES.items():
            source = os.path.join(cls.build.name, f"{name}.c")
            with open(source, "w", encoding="ascii") as handle:
                handle.write(code)
            output = os.path.join(cls.build.name, f"{name}.so")
            subprocess.run([compiler, "-shared", "-fPIC", "-o", output, source], check=True, capture_output=True)
            cls.libs[name] = output
        # The reader's test needs a replacement that is shorter by whole pages.
        assert os.path.getsize(cls.libs["v1"]) > os.path.getsize(cls.libs["v2"]) + 3 * 4096

    @classmethod
    def tearDownClass(cls):
        cls.build.cleanup()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.iris = os.path.join(self.tmp.name, "iris")
        os.makedirs(os.path.join(self.iris, "bin"))
        os.makedirs(os.path.join(self.iris, "mgr"))
        self.dest = os.path.join(self.iris, "bin", NAME)

    def tearDown(self):
        self.tmp.cleanup()

    def install(self, lib: str, *extra: str) -> subprocess.CompletedProcess:
        result = make_install(f"IRIS_DIR={self.iris}", f"LIB={lib}", *extra)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        return result

    def assert_no_temporary_files(self, directory: str) -> None:
        left = [n for n in os.listdir(directory) if ".new." in n]
        self.assertEqual(left, [], f"temporary files left in {directory}")

    def start_reader(self) -> subprocess.Popen:
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, self.dest],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = reader.stdout.readline()
        if not line.startswith("mapped "):
            _, err = reader.communicate("", timeout=60)
            self.fail(f"the reader did not map the file: {line!r} {err}")
        return reader

    def finish_reader(self, reader: subprocess.Popen) -> tuple[int, str, str]:
        out, err = reader.communicate("go\n", timeout=60)
        return reader.returncode, out.strip(), err

    # ------------------------------------------------------------------------------------------------

    def test_first_install(self):
        result = self.install(self.libs["v1"])
        self.assertEqual(sha256(self.dest), sha256(self.libs["v1"]))
        self.assertEqual(stat.S_IMODE(os.stat(self.dest).st_mode), 0o755)
        self.assertFalse(os.path.exists(self.dest + ".prev"), "nothing to keep on a first install")
        self.assertIn("installed", result.stdout)
        self.assert_no_temporary_files(os.path.dirname(self.dest))

    def test_upgrade_renames_a_new_inode_into_place(self):
        self.install(self.libs["v1"])
        old_inode = os.stat(self.dest).st_ino
        self.install(self.libs["v2"])
        new = os.stat(self.dest)
        self.assertNotEqual(new.st_ino, old_inode, "the destination must be a new file, renamed into place")
        self.assertEqual(sha256(self.dest), sha256(self.libs["v2"]))
        prev = os.stat(self.dest + ".prev")
        self.assertEqual(prev.st_ino, old_inode, "the previous library is kept as .prev, the same inode")
        self.assertEqual(sha256(self.dest + ".prev"), sha256(self.libs["v1"]))
        self.assert_no_temporary_files(os.path.dirname(self.dest))

    def test_a_process_that_mapped_the_old_library_keeps_reading_it(self):
        self.install(self.libs["v1"])
        reader = self.start_reader()
        try:
            self.install(self.libs["v2"])
        finally:
            code, digest, err = self.finish_reader(reader)
        self.assertEqual(code, 0, f"the reader died (signal {-code if code < 0 else None}): {err}")
        self.assertEqual(digest, sha256(self.libs["v1"]), "the reader still sees the old library's bytes")
        self.assertEqual(sha256(self.dest), sha256(self.libs["v2"]), "new openers get the new library")

    def test_control_overwriting_in_place_kills_the_reader(self):
        # What `cp new.so <iris>/bin/` does: truncate and rewrite the mapped file. The reader above must
        # detect it, or its success would prove nothing.
        self.install(self.libs["v1"])
        reader = self.start_reader()
        try:
            subprocess.run(["cp", self.libs["v2"], self.dest], check=True)
        finally:
            code, _, _ = self.finish_reader(reader)
        self.assertEqual(code, -signal.SIGBUS, "an in-place overwrite of a mapped library is a SIGBUS")

    def test_mode_and_owner_follow_the_old_file(self):
        self.install(self.libs["v1"])
        os.chmod(self.dest, 0o750)
        self.install(self.libs["v2"])
        self.assertEqual(stat.S_IMODE(os.stat(self.dest).st_mode), 0o750, "the old mode is kept")
        os.chmod(self.dest, 0o777)
        self.install(self.libs["v1"])
        self.assertEqual(stat.S_IMODE(os.stat(self.dest).st_mode), 0o755, "never group- or world-writable")
        self.assertEqual(os.stat(self.dest).st_uid, os.getuid())

    def test_another_directory(self):
        target = os.path.join(self.iris, "mgr", "irisvip")
        os.makedirs(target)
        self.install(self.libs["v1"], f"INSTALL_DIR={target}")
        self.assertEqual(sha256(os.path.join(target, NAME)), sha256(self.libs["v1"]))
        self.assertFalse(os.path.exists(self.dest), "bin/ untouched")

    def test_default_lib_is_the_release_build(self):
        target = os.path.join(self.tmp.name, "target")
        os.makedirs(os.path.join(target, "release"))
        shutil.copy(self.libs["v2"], os.path.join(target, "release", NAME))
        result = make_install(f"IRIS_DIR={self.iris}", env={"CARGO_TARGET_DIR": target})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sha256(self.dest), sha256(self.libs["v2"]))

    def test_refusals_change_nothing(self):
        self.install(self.libs["v1"])
        plain = os.path.join(self.tmp.name, "plain")
        os.makedirs(plain)
        not_elf = os.path.join(self.tmp.name, "not-a-library.so")
        with open(not_elf, "w", encoding="ascii") as handle:
            handle.write("this is not a shared library\n")
        cases = [
            ("IRIS_DIR unset", ["IRIS_DIR=", f"LIB={self.libs['v2']}"], "IRIS_DIR is not set"),
            ("IRIS_DIR missing", [f"IRIS_DIR={self.tmp.name}/nowhere", f"LIB={self.libs['v2']}"], "has no bin/ directory"),
            ("IRIS_DIR without bin", [f"IRIS_DIR={plain}", f"LIB={self.libs['v2']}"], "has no bin/ directory"),
            ("INSTALL_DIR missing", [f"IRIS_DIR={self.iris}", f"LIB={self.libs['v2']}", f"INSTALL_DIR={self.iris}/nowhere"], "is not a directory"),
            ("LIB missing", [f"IRIS_DIR={self.iris}", f"LIB={self.tmp.name}/missing.so"], "not found"),
            ("LIB not ELF", [f"IRIS_DIR={self.iris}", f"LIB={not_elf}"], "is not an ELF shared object"),
            ("LIB not a callout library", [f"IRIS_DIR={self.iris}", f"LIB={self.libs['notcallout']}"], "does not export GetZFTable"),
        ]
        for label, args, message in cases:
            with self.subTest(label):
                before = snapshot(self.tmp.name)
                result = make_install(*args)
                self.assertNotEqual(result.returncode, 0, f"{label}: accepted\n{result.stdout}")
                self.assertIn(message, result.stderr)
                self.assertIn("nothing was changed", result.stderr)
                self.assertEqual(snapshot(self.tmp.name), before, f"{label}: something changed")
        self.assertEqual(sha256(self.dest), sha256(self.libs["v1"]))

    def test_symbolic_link_is_refused(self):
        real = os.path.join(self.iris, "mgr", NAME)
        shutil.copy(self.libs["v1"], real)
        os.symlink(real, self.dest)
        before = snapshot(self.tmp.name)
        result = make_install(f"IRIS_DIR={self.iris}", f"LIB={self.libs['v2']}")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("is a symbolic link", result.stderr)
        self.assertEqual(snapshot(self.tmp.name), before)

    def test_the_release_build_when_there_is_one(self):
        candidates = [
            os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release", NAME),
            os.path.join(REPO, "target", "release", NAME),
        ]
        built = next((path for path in candidates if os.path.isfile(path)), None)
        if built is None:
            self.skipTest("no release build of libirisvip.so here (make build); the stand-ins cover the rest")
        self.install(built)
        self.assertEqual(sha256(self.dest), sha256(built))


if __name__ == "__main__":
    unittest.main()
