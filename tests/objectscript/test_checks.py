"""Tests of parse_check.py and zf_calls.py (run: python -m unittest discover -s tests/objectscript).

Needs only tree-sitter and tree-sitter-objectscript; works under pytest too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OBJECTSCRIPT = os.path.join(REPO, "objectscript")


def run(script: str, directory: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, os.path.join(HERE, script), directory],
        capture_output=True,
        text=True,
        check=False,
    )


def class_file(body: str, name: str = "Demo.Calls") -> str:
    """A class with `body` (methods, indented by 0) inside."""
    return f"Class {name} Extends %RegisteredObject\n{{\n\n{textwrap.dedent(body).strip()}\n\n}}\n"


class Sources:
    """A temporary directory of ObjectScript files."""

    def __init__(self, files: dict[str, str]):
        self.tmp = tempfile.TemporaryDirectory()
        for relative, text in files.items():
            path = os.path.join(self.tmp.name, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)

    def __enter__(self) -> str:
        return self.tmp.name

    def __exit__(self, *exc) -> None:
        self.tmp.cleanup()


class ZfCallsTest(unittest.TestCase):
    def inventory(self, files: dict[str, str]) -> tuple[int, list, str]:
        with Sources(files) as directory:
            result = run("zf_calls.py", directory)
        return result.returncode, json.loads(result.stdout), result.stderr

    def test_project_sources(self):
        result = run("zf_calls.py", OBJECTSCRIPT)
        self.assertEqual(result.returncode, 0, result.stderr)
        entries = json.loads(result.stdout)
        self.assertEqual(
            sorted((e["name"], e["inputs"]) for e in entries),
            [("vip_check", 1), ("vip_claim", 1), ("vip_release", 1), ("vip_status", 1)],
        )
        for entry in entries:
            self.assertRegex(entry["where"], r"^src/cls/IrisVip/VIP\.cls:\d+$")

    def test_variable_in_same_method(self):
        code, entries, _ = self.inventory({"src/A.cls": class_file('''
            ClassMethod Claim(lib, config) As %String
            {
                Set fn = $Get(^||Cache("claim"))
                If fn = "" {
                    Set fn = $ZF(-4, 3, lib, "vip_claim")
                }
                Quit $ZF(-5, lib, fn, config)
            }
        ''')})
        self.assertEqual(code, 0)
        self.assertEqual(entries, [{"name": "vip_claim", "inputs": 1, "where": "src/A.cls:8"}])

    def test_direct_nesting_and_two_inputs(self):
        code, entries, _ = self.inventory({"A.cls": class_file('''
            ClassMethod Call(lib, config, buffer) As %String
            {
                Quit $zf(-5, lib, $ZF(-4,3,lib,"vip_status"), config, buffer)
            }
        ''')})
        self.assertEqual(code, 0)
        self.assertEqual([(e["name"], e["inputs"]) for e in entries], [("vip_status", 2)])

    def test_trailing_omitted_argument_is_not_counted(self):
        code, entries, _ = self.inventory({"A.cls": class_file('''
            ClassMethod Call(lib, config) As %String
            {
                Set id = $ZF(-4, 3, lib, "vip_release")
                Quit $ZF(-5, lib, id, config, )
            }
        ''')})
        self.assertEqual(code, 0)
        self.assertEqual([(e["name"], e["inputs"]) for e in entries], [("vip_release", 1)])

    def test_name_must_be_a_literal(self):
        code, entries, stderr = self.inventory({"A.cls": class_file('''
            ClassMethod Call(lib, name, config) As %String
            {
                Set fn = $ZF(-4, 3, lib, name)
                Quit $ZF(-5, lib, fn, config)
            }
        ''')})
        self.assertEqual(code, 1)
        self.assertIn("not a string literal", stderr)

    def test_concatenated_name_is_not_a_literal(self):
        code, _, stderr = self.inventory({"A.cls": class_file('''
            ClassMethod Call(lib, config) As %String
            {
                Set fn = $ZF(-4, 3, lib, "vip_"_"claim")
                Quit $ZF(-5, lib, fn, config)
            }
        ''')})
        self.assertEqual(code, 1)
        self.assertIn("not a string literal", stderr)

    def test_variable_of_another_method_does_not_match(self):
        code, entries, stderr = self.inventory({"A.cls": class_file('''
            ClassMethod Lookup(lib) As %Integer
            {
                Set fn = $ZF(-4, 3, lib, "vip_claim")
                Quit fn
            }

            ClassMethod Call(lib, fn, config) As %String
            {
                Quit $ZF(-5, lib, fn, config)
            }
        ''')})
        self.assertEqual(code, 1)
        self.assertEqual(entries, [])
        self.assertIn("no $ZF(-5,...) call uses this function id", stderr)
        self.assertIn("comes from no", stderr)

    def test_different_input_counts(self):
        code, _, stderr = self.inventory({"A.cls": class_file('''
            ClassMethod Call(lib, config) As %String
            {
                Set fn = $ZF(-4, 3, lib, "vip_claim")
                Set a = $ZF(-5, lib, fn, config)
                Quit $ZF(-5, lib, fn, config, "x")
            }
        ''')})
        self.assertEqual(code, 1)
        self.assertIn("different input counts", stderr)

    def test_routine_procedures_and_labels(self):
        routine = textwrap.dedent('''\
            ROUTINE Demo
            Demo ; demo
                Quit
            Claim(lib, config) PUBLIC {
                Set fn = $ZF(-4, 3, lib, "vip_claim")
                Quit $ZF(-5, lib, fn, config)
            }
            status ; label code
                Set sid = $ZF(-4, 3, lib, "vip_status")
                Set json = $ZF(-5, lib, sid, config)
                Quit
            direct ;
                Quit $ZF(-3, "/x/libirisvip.so", "vip_release", config)
            ''')
        code, entries, stderr = self.inventory({"src/rtn/Demo.mac": routine})
        self.assertEqual(code, 0, stderr)
        self.assertEqual(
            sorted((e["name"], e["inputs"], e["where"]) for e in entries),
            [
                ("vip_claim", 1, "src/rtn/Demo.mac:5"),
                ("vip_release", 1, "src/rtn/Demo.mac:13"),
                ("vip_status", 1, "src/rtn/Demo.mac:9"),
            ],
        )

    def test_nothing_found(self):
        code, entries, stderr = self.inventory({"A.cls": class_file('''
            ClassMethod Nothing() As %String
            {
                Quit $Get(x)
            }
        ''')})
        self.assertEqual(code, 1)
        self.assertEqual(entries, [])
        self.assertIn("no $ZF(-4,3,...) function lookup found", stderr)


    def test_syntax_error_is_reported(self):
        code, _, stderr = self.inventory({"A.cls": class_file('''
            ClassMethod Call(lib, config) As %String
            {
                Set fn = $ZF(-4, 3, lib, "vip_claim")
                Quit $ZF(-5, lib, fn, config
            }
        ''')})
        self.assertEqual(code, 1)
        self.assertIn("has syntax errors", stderr)


class ParseCheckTest(unittest.TestCase):
    def test_project_sources(self):
        result = run("parse_check.py", OBJECTSCRIPT)
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertIn("src/cls/IrisVip/VIP.cls: OK", result.stdout)
        self.assertIn("src/rtn/ZMIRROR.mac: OK", result.stdout)

    def test_errors_are_located(self):
        bad_class = class_file('''
            ClassMethod Broken() As %String
            {
                Set x = 1 +
                Quit x
            }
        ''')
        bad_routine = "ROUTINE Bad\nBad ;\n    Set = 1\n    Quit\n"
        good_routine = "ROUTINE Good\nGood ;\n    Quit\n"
        with Sources({"Bad.cls": bad_class, "Bad.mac": bad_routine, "Good.mac": good_routine}) as directory:
            result = run("parse_check.py", directory)
        self.assertEqual(result.returncode, 1)
        self.assertIn("Bad.cls: ERROR", result.stdout)
        self.assertIn("Bad.mac: ERROR", result.stdout)
        self.assertIn("Good.mac: OK", result.stdout)
        self.assertRegex(result.stdout, r"Bad\.mac:3:\d+: ")
        self.assertIn("1 passed, 2 failed", result.stdout)

    def test_argumented_quit_in_try(self):
        source = class_file('''
            ClassMethod M(x) As %Integer
            {
                Try {
                    If x { Quit 1 }
                    Quit
                } Catch {
                    Quit 2
                }
                Quit 3
            }
        ''')
        with Sources({"Q.cls": source}) as directory:
            result = run("parse_check.py", directory)
        self.assertEqual(result.returncode, 1)
        self.assertIn("Q.cls:7:", result.stdout)
        self.assertIn("Q.cls:10:", result.stdout)
        self.assertNotIn("Q.cls:8:", result.stdout)
        self.assertNotIn("Q.cls:12:", result.stdout)

    def test_no_files(self):
        with Sources({"README.md": "nothing here\n"}) as directory:
            result = run("parse_check.py", directory)
        self.assertEqual(result.returncode, 1)
        self.assertIn("no ObjectScript sources", result.stdout)


if __name__ == "__main__":
    unittest.main()
