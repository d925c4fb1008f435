"""Tests of rules.py: the project passes, and each rule fails on a deliberately broken module.

Run: python -m unittest discover -s tests/objectscript. Needs only tree-sitter and tree-sitter-objectscript.
Each broken module below differs from a good one in the one thing its rule is about, and the good one
passes, so a failure is the rule's doing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OBJECTSCRIPT = os.path.join(REPO, "objectscript")

MODULE_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Export generator="Cache" version="25">
  <Document name="demo.ZPM"><Module>
    <Name>demo</Name><Version>0.0.1</Version><SourcesRoot>src</SourcesRoot>
    <UnitTest Name="{name}" Package="IrisVip.Test" Phase="test"/>
  </Module></Document>
</Export>
"""

# A small module that keeps every rule: ^ZMIRROR and ^%ZSTART start a claimer with JOB, the claim goes
# through the rule, the task is created as it must be, the Catch blocks guard their logging, and the
# test case sits in tests/ on the capture base.
VIP = """
Class IrisVip.VIP Extends %RegisteredObject
{

ClassMethod Claim(config As %String = "") As %Status
{
    Quit ..Invoke("claim", config)
}

ClassMethod Invoke(op As %String, config As %String = "") As %Status
{
    Set lib = $ZF(-4, 1, "/x/libirisvip.so")
    Set json = ..CallLibrary(op, lib, config)
    Quit $$$OK
}

ClassMethod CallLibrary(op As %String, lib As %Integer, config As %String) As %String
{
    Quit ..CallClaim(lib, config)
}

ClassMethod CallClaim(lib As %Integer, config As %String) As %String
{
    Quit $ZF(-5, lib, $ZF(-4, 3, lib, "vip_claim"), config)
}

ClassMethod ClaimRuleNow() As %String
{
    Quit $Select($SYSTEM.Mirror.IsPrimary(): "primary", 1: "not-primary")
}

ClassMethod InvokeAddresses(op As %String, write As %String = "") As %Status
{
    Quit ..Invoke(op, ..GetConfig()_";write="_write)
}

ClassMethod GuardedClaim(write As %String) As %Status
{
    Set decision = ..ClaimRuleNow()
    If decision '= "primary" {
        Quit $$$OK
    }
    Quit ..InvokeAddresses("claim", write)
}

ClassMethod GetConfig() As %String
{
    Quit $Get(^IrisVip("config"))
}

ClassMethod Release(config As %String = "", source As %String = "") As %Status
{
    Quit ..Invoke("release", config)
}

ClassMethod OnSystemStop() As %Status
{
    // Every address: ^IrisVip("config") and ^IrisVip("addresses", name).
    Do ..Release(, "ZSTOP")
    Quit ..Release("", "ZSTOP")
}

ClassMethod Log(text As %String)
{
    Try {
        Do ##class(%SYS.System).WriteToConsoleLog(text, , 0, "DEMO")
    } Catch {
    }
}

ClassMethod OnBecomePrimary() As %Status
{
    Quit ##class(IrisVip.Claimer).Start("ZMIRROR")
}

ClassMethod OnSystemStart() As %Status
{
    Quit ##class(IrisVip.Claimer).Start("ZSTART")
}

}
"""

CLAIMER = """
Class IrisVip.Claimer Extends %RegisteredObject
{

ClassMethod Start(source As %String) As %Status
{
    Job ##class(IrisVip.Claimer).Run(source)::5
    Quit $$$OK
}

ClassMethod Run(source As %String)
{
    Do ##class(IrisVip.VIP).GuardedClaim("always")
}

}
"""

TASK = """
Class IrisVip.Task.Reassert Extends %SYS.Task.Definition
{

ClassMethod Install(user As %String) As %Status
{
    Set task = ##class(%SYS.Task).%New()
    Set task.TaskClass = $ClassName()
    Set task.RunAsUser = user
    Set task.SuspendOnError = 0
    Set task.MirrorStatus = 1
    Quit task.%Save()
}

}
"""

ZMIRROR = """\
ROUTINE ZMIRROR
ZMIRROR ;
    Quit
NotifyBecomePrimary() PUBLIC {
    Try {
        Do ##class(IrisVip.VIP).OnBecomePrimary()
    } Catch ex {
        Try {
            Do ##class(%SYS.System).WriteToConsoleLog("ZMIRROR: "_ex.DisplayString(), , 2, "ZMIRROR")
        } Catch {
        }
    }
    Quit
}
"""

ZSTART = """\
ROUTINE %ZSTART
%ZSTART ;
    Quit
SYSTEM ;
    New ex
    Try {
        Do ##class(IrisVip.VIP).OnSystemStart()
    } Catch ex {
        Try {
            Do ##class(%SYS.System).WriteToConsoleLog("ZSTART: "_ex.DisplayString(), , 2, "ZSTART")
        } Catch {
        }
    }
    Quit
"""

CASE = """
Class IrisVip.Test.Case Extends %UnitTest.TestCase
{

Method OnBeforeOneTest(testname As %String) As %Status
{
    Do ##class(IrisVip.VIP).CaptureLog(1)
    Quit $$$OK
}

}
"""

GOOD_TEST = """
Class IrisVip.Test.Good Extends IrisVip.Test.Case
{

Method TestSomething()
{
    If $Get(^IrisVip("testconfig")) = "" {
        Do $$$AssertSkipped("no test config")
        Quit
    }
    Do $$$AssertTrue(1, "fine")
}

}
"""


def good_module() -> dict[str, str]:
    return {
        "module.xml": MODULE_XML.format(name="/tests"),
        "src/cls/IrisVip/VIP.cls": VIP,
        "src/cls/IrisVip/Claimer.cls": CLAIMER,
        "src/cls/IrisVip/Task/Reassert.cls": TASK,
        "src/rtn/ZMIRROR.mac": ZMIRROR,
        "src/rtn/%ZSTART.mac": ZSTART,
        "tests/IrisVip/Test/Case.cls": CASE,
        "tests/IrisVip/Test/Good.cls": GOOD_TEST,
    }


def run_rules(files: dict[str, str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as directory:
        for relative, text in files.items():
            path = os.path.join(directory, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(textwrap.dedent(text).lstrip("\n"))
        return subprocess.run(
            [sys.executable, os.path.join(HERE, "rules.py"), directory],
            capture_output=True, text=True, check=False,
        )


def with_changes(**changes: str | None) -> dict[str, str]:
    """The good module with files replaced (or removed, for None); keys use __ for / and _pct_ for %."""
    files = good_module()
    for key, text in changes.items():
        relative = key.replace("__", "/").replace("_pct_", "%").replace("_dot_", ".")
        if text is None:
            files.pop(relative, None)
        else:
            files[relative] = text
    return files


class RulesTest(unittest.TestCase):
    def assert_broken(self, result: subprocess.CompletedProcess, rule: str, *fragments: str) -> None:
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        lines = [line for line in result.stdout.splitlines() if line.startswith(f"{rule}: ") and " checked " not in line]
        self.assertTrue(lines, f"no {rule} problem reported:\n{result.stdout}")
        for fragment in fragments:
            self.assertTrue(any(fragment in line for line in lines), f"{fragment!r} not in:\n" + "\n".join(lines))

    def only_rule(self, result: subprocess.CompletedProcess, rule: str) -> None:
        """Every problem reported belongs to `rule`: the broken module breaks nothing else."""
        problems = [line for line in result.stdout.splitlines() if ": " in line and " checked " not in line
                    and not line.endswith("problem(s)")]
        self.assertTrue(all(line.startswith(f"{rule}: ") for line in problems), result.stdout)

    # The project and the good fixture --------------------------------------------------------------

    def test_project_sources(self):
        result = subprocess.run(
            [sys.executable, os.path.join(HERE, "rules.py"), OBJECTSCRIPT],
            capture_output=True, text=True, check=False,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("job-only: checked ^ZMIRROR, ^%ZSTART", result.stdout)
        self.assertRegex(result.stdout, r"membership: checked [1-9]\d* claim site")
        self.assertRegex(result.stdout, r"all-addresses: checked [1-9]\d* method")
        self.assertRegex(result.stdout, r"tests-layout: checked [1-9]\d* test case\(s\) in /tests")
        self.assertIn("task-install: checked 1 method", result.stdout)
        self.assertRegex(result.stdout, r"guarded-catch: checked [1-9]\d* WriteToConsoleLog")

    def test_good_fixture_passes(self):
        result = run_rules(good_module())
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("job-only: checked ^ZMIRROR, ^%ZSTART", result.stdout)
        self.assertIn("membership: checked 1 claim site(s)", result.stdout)

    # job-only ---------------------------------------------------------------------------------------

    def test_synchronous_claim_from_zmirror(self):
        vip = VIP.replace('Quit ##class(IrisVip.Claimer).Start("ZMIRROR")', 'Quit ..Claim("")')
        result = run_rules(with_changes(src__cls__IrisVip__VIP_dot_cls=vip))
        self.assert_broken(result, "job-only", "^ZMIRROR calls the library ($ZF)",
                           "^ZMIRROR -> IrisVip.VIP:OnBecomePrimary -> IrisVip.VIP:Claim -> IrisVip.VIP:Invoke")

    def test_zf_in_the_routine_itself(self):
        zstart = ZSTART.replace("Do ##class(IrisVip.VIP).OnSystemStart()", 'Set x = $ZF(-4, 1, "/x/lib.so")')
        result = run_rules(with_changes(src__rtn___pct_ZSTART_dot_mac=zstart))
        self.assert_broken(result, "job-only", "src/rtn/%ZSTART.mac:7:", "^%ZSTART calls the library")

    def test_instance_call_is_followed_by_name(self):
        vip = VIP.replace('Quit ##class(IrisVip.Claimer).Start("ZMIRROR")', 'Set o = ..%New()\n    Quit o.CallClaim(1, "")')
        result = run_rules(with_changes(src__cls__IrisVip__VIP_dot_cls=vip))
        self.assert_broken(result, "job-only", "IrisVip.VIP:CallClaim")

    def test_routine_call_is_followed(self):
        zmirror = ZMIRROR.replace("Do ##class(IrisVip.VIP).OnBecomePrimary()", "Do Go^ZHELP()")
        helper = "ROUTINE ZHELP\nZHELP ;\n    Quit\nGo() PUBLIC {\n    Do ##class(IrisVip.VIP).Claim(\"\")\n    Quit\n}\n"
        result = run_rules(with_changes(src__rtn__ZMIRROR_dot_mac=zmirror, src__rtn__ZHELP_dot_mac=helper))
        self.assert_broken(result, "job-only", "^ZMIRROR -> ^ZHELP -> IrisVip.VIP:Claim")

    def test_dynamic_call_is_refused(self):
        vip = VIP.replace('Quit ##class(IrisVip.Claimer).Start("ZMIRROR")',
                          'Do $ClassMethod("IrisVip.Claimer", "Start", "ZMIRROR")\n    Quit $$$OK')
        result = run_rules(with_changes(src__cls__IrisVip__VIP_dot_cls=vip))
        self.assert_broken(result, "job-only", "dynamic call ($classmethod)")

    def test_xecute_is_refused(self):
        zmirror = ZMIRROR.replace("Do ##class(IrisVip.VIP).OnBecomePrimary()",
                                  'Xecute "do ##class(IrisVip.VIP).OnBecomePrimary()"')
        result = run_rules(with_changes(src__rtn__ZMIRROR_dot_mac=zmirror))
        self.assert_broken(result, "job-only", "dynamic call (XECUTE)")

    def test_job_without_timeout(self):
        claimer = CLAIMER.replace("Run(source)::5", "Run(source)")
        result = run_rules(with_changes(src__cls__IrisVip__Claimer_dot_cls=claimer))
        self.assert_broken(result, "job-only", "JOB without a timeout")

    def test_no_job_at_all(self):
        vip = VIP.replace('Quit ##class(IrisVip.Claimer).Start("ZSTART")', "Quit $$$OK")
        result = run_rules(with_changes(src__cls__IrisVip__VIP_dot_cls=vip))
        self.assert_broken(result, "job-only", "^%ZSTART starts no claimer")
        self.only_rule(result, "job-only")

    def test_claim_inside_the_job_is_fine(self):
        # The same synchronous path, but behind JOB: not a problem.
        claimer = CLAIMER.replace('Do ##class(IrisVip.VIP).GuardedClaim("always")', 'Do ##class(IrisVip.VIP).GuardedClaim("always")\n    Set x = $ZF(-4, 1, "/x")')
        result = run_rules(with_changes(src__cls__IrisVip__Claimer_dot_cls=claimer))
        self.assertEqual(result.returncode, 0, result.stdout)

    # membership -------------------------------------------------------------------------------------

    def test_claim_without_the_rule(self):
        claimer = CLAIMER.replace('Do ##class(IrisVip.VIP).GuardedClaim("always")', 'Do ##class(IrisVip.VIP).Claim("")')
        result = run_rules(with_changes(src__cls__IrisVip__Claimer_dot_cls=claimer))
        self.assert_broken(result, "membership", "src/cls/IrisVip/Claimer.cls:12:", "IrisVip.Claimer:Run claims without the membership rule")
        self.only_rule(result, "membership")

    def test_rule_after_the_claim_does_not_count(self):
        vip = VIP.replace('''    Set decision = ..ClaimRuleNow()
    If decision '= "primary" {
        Quit $$$OK
    }
    Quit ..InvokeAddresses("claim", write)''', '''    Set sc = ..InvokeAddresses("claim", write)
    Set decision = ..ClaimRuleNow()
    Quit sc''')
        result = run_rules(with_changes(src__cls__IrisVip__VIP_dot_cls=vip))
        self.assert_broken(result, "membership", "IrisVip.VIP:GuardedClaim claims without the membership rule")

    def test_operation_that_is_not_a_literal_counts_as_a_claim(self):
        task = TASK.replace("Quit task.%Save()", 'Set op = "claim"\n    Do ##class(IrisVip.VIP).Invoke(op, "")\n    Quit task.%Save()')
        result = run_rules(with_changes(src__cls__IrisVip__Task__Reassert_dot_cls=task))
        self.assert_broken(result, "membership", "IrisVip.Task.Reassert:Install claims")

    def test_other_operations_are_not_claims(self):
        # (Invoke outside the wrapper picks one config, which all-addresses refuses; membership does not.)
        task = TASK.replace("Quit task.%Save()", 'Do ##class(IrisVip.VIP).Invoke("status", "")\n    Quit task.%Save()')
        result = run_rules(with_changes(src__cls__IrisVip__Task__Reassert_dot_cls=task))
        self.assertNotIn("membership: src", result.stdout)
        self.only_rule(result, "all-addresses")

    def test_entry_name_outside_the_wrapper(self):
        claimer = CLAIMER.replace('Do ##class(IrisVip.VIP).GuardedClaim("always")', 'Set name = "vip_claim"')
        result = run_rules(with_changes(src__cls__IrisVip__Claimer_dot_cls=claimer))
        self.assert_broken(result, "membership", "IrisVip.Claimer:Run claims")

    def test_invoke_addresses_claim_without_the_rule(self):
        claimer = CLAIMER.replace('Do ##class(IrisVip.VIP).GuardedClaim("always")',
                                  'Do ##class(IrisVip.VIP).InvokeAddresses("claim", "always")')
        result = run_rules(with_changes(src__cls__IrisVip__Claimer_dot_cls=claimer))
        self.assert_broken(result, "membership", "IrisVip.Claimer:Run claims without the membership rule")
        self.only_rule(result, "membership")

    def test_invoke_addresses_status_is_not_a_claim(self):
        task = TASK.replace("Quit task.%Save()", 'Do ##class(IrisVip.VIP).InvokeAddresses("status")\n    Quit task.%Save()')
        result = run_rules(with_changes(src__cls__IrisVip__Task__Reassert_dot_cls=task))
        self.assertEqual(result.returncode, 0, result.stdout)

    # all-addresses ----------------------------------------------------------------------------------

    def test_good_fixture_reads_the_config_only_in_the_layer(self):
        result = run_rules(good_module())
        self.assertRegex(result.stdout, r"all-addresses: checked [1-9]\d* method")
        self.assertNotIn("all-addresses: src", result.stdout)

    def test_single_config_read_outside_the_layer(self):
        claimer = CLAIMER.replace('Do ##class(IrisVip.VIP).GuardedClaim("always")',
                                  'Set config = ^IrisVip("config")\n    Do ##class(IrisVip.VIP).GuardedClaim("always")')
        result = run_rules(with_changes(src__cls__IrisVip__Claimer_dot_cls=claimer))
        self.assert_broken(result, "all-addresses", "src/cls/IrisVip/Claimer.cls:12:",
                           'IrisVip.Claimer:Run reads ^IrisVip("config")')
        self.only_rule(result, "all-addresses")

    def test_named_address_read_outside_the_layer(self):
        task = TASK.replace("Quit task.%Save()", 'Set c = $Get(^IrisVip("addresses", "eip"))\n    Quit task.%Save()')
        result = run_rules(with_changes(src__cls__IrisVip__Task__Reassert_dot_cls=task))
        self.assert_broken(result, "all-addresses", 'IrisVip.Task.Reassert:Install reads ^IrisVip("addresses"')

    def test_one_config_picked_in_the_wrapper(self):
        vip = VIP.replace('    Do ..Release(, "ZSTOP")\n    Quit ..Release("", "ZSTOP")',
                          '    Quit ..Invoke("release", ..GetConfig())')
        result = run_rules(with_changes(src__cls__IrisVip__VIP_dot_cls=vip))
        self.assert_broken(result, "all-addresses", "IrisVip.VIP:OnSystemStop calls Invoke, which picks one config",
                           "IrisVip.VIP:OnSystemStop calls GetConfig")
        self.only_rule(result, "all-addresses")

    def test_release_with_a_config_of_its_own(self):
        vip = VIP.replace('Quit ..Release("", "ZSTOP")', 'Quit ..Release("vip=192.168.240.10", "ZSTOP")')
        result = run_rules(with_changes(src__cls__IrisVip__VIP_dot_cls=vip))
        self.assert_broken(result, "all-addresses", 'calls Release with a config of its own ("vip=192.168.240.10")')

    def test_status_from_another_class_with_a_config(self):
        task = TASK.replace("Quit task.%Save()", 'Do ##class(IrisVip.VIP).Status(cfg)\n    Quit task.%Save()')
        result = run_rules(with_changes(src__cls__IrisVip__Task__Reassert_dot_cls=task))
        self.assert_broken(result, "all-addresses",
                           "IrisVip.Task.Reassert:Install calls Status with a config of its own (cfg)")

    def test_tests_may_pick_one_config(self):
        test = GOOD_TEST.replace('Do $$$AssertTrue(1, "fine")', 'Do ##class(IrisVip.VIP).Status(^IrisVip("config"))')
        result = run_rules(with_changes(tests__IrisVip__Test__Good_dot_cls=test))
        self.assertEqual(result.returncode, 0, result.stdout)

    def test_tests_may_claim_directly(self):
        test = GOOD_TEST.replace('Do $$$AssertTrue(1, "fine")', 'Do $$$AssertStatusOK(##class(IrisVip.VIP).Claim(^IrisVip("testconfig")))')
        result = run_rules(with_changes(tests__IrisVip__Test__Good_dot_cls=test))
        self.assertEqual(result.returncode, 0, result.stdout)

    # tests-layout -----------------------------------------------------------------------------------

    def test_test_case_under_src(self):
        result = run_rules(with_changes(tests__IrisVip__Test__Good_dot_cls=None, src__cls__IrisVip__Test__Good_dot_cls=GOOD_TEST))
        self.assert_broken(result, "tests-layout", "IrisVip.Test.Good is a test case under src/")

    def test_class_defined_twice(self):
        result = run_rules(with_changes(src__cls__IrisVip__Test__Good_dot_cls=GOOD_TEST))
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertRegex(result.stdout, r"duplicate: \S+Good.cls: class IrisVip.Test.Good is also defined in \S+Good.cls")

    def test_unittest_in_src(self):
        result = run_rules(with_changes(module_dot_xml=MODULE_XML.format(name="/src/cls/")))
        self.assert_broken(result, "tests-layout", "must name a folder of its own outside src/")

    def test_no_unittest_element(self):
        xml = MODULE_XML.format(name="/tests").replace('<UnitTest Name="/tests" Package="IrisVip.Test" Phase="test"/>', "")
        result = run_rules(with_changes(module_dot_xml=xml))
        self.assert_broken(result, "tests-layout", "no <UnitTest")

    def test_path_must_match_the_class(self):
        result = run_rules(with_changes(tests__IrisVip__Test__Good_dot_cls=None, tests__IrisVip__Test__Wrong_dot_cls=GOOD_TEST))
        self.assert_broken(result, "tests-layout", "class IrisVip.Test.Good is in tests/IrisVip/Test/Wrong.cls")

    def test_case_without_the_capture_base(self):
        test = GOOD_TEST.replace("Extends IrisVip.Test.Case", "Extends %UnitTest.TestCase")
        result = run_rules(with_changes(tests__IrisVip__Test__Good_dot_cls=test))
        self.assert_broken(result, "tests-layout", "IrisVip.Test.Good does not extend a base whose OnBeforeOneTest calls CaptureLog(1)")
        self.only_rule(result, "tests-layout")

    def test_base_that_does_not_capture(self):
        case = CASE.replace("CaptureLog(1)", "CaptureLog(0)")
        result = run_rules(with_changes(tests__IrisVip__Test__Case_dot_cls=case))
        self.assert_broken(result, "tests-layout", "does not extend a base")

    def test_skip_written_as_a_log_message(self):
        test = GOOD_TEST.replace('Do $$$AssertSkipped("no test config")', 'Do $$$LogMessage("SKIPPED: no test config")')
        result = run_rules(with_changes(tests__IrisVip__Test__Good_dot_cls=test))
        self.assert_broken(result, "tests-layout", "tests/IrisVip/Test/Good.cls:7:", "use $$$AssertSkipped")

    def test_test_writing_to_messages_log(self):
        test = GOOD_TEST.replace('Do $$$AssertTrue(1, "fine")', 'Do ##class(%SYS.System).WriteToConsoleLog("x", , 2, "T")')
        result = run_rules(with_changes(tests__IrisVip__Test__Good_dot_cls=test))
        self.assert_broken(result, "tests-layout", "a test writes to messages.log")

    def test_class_outside_the_test_package(self):
        test = GOOD_TEST.replace("Class IrisVip.Test.Good", "Class Other.Good")
        result = run_rules(with_changes(tests__IrisVip__Test__Good_dot_cls=None, tests__Other__Good_dot_cls=test))
        self.assert_broken(result, "tests-layout", "Other.Good is not in the test package IrisVip.Test")

    # task-install -----------------------------------------------------------------------------------

    def test_task_without_run_as_user(self):
        task = TASK.replace("    Set task.RunAsUser = user\n", "")
        result = run_rules(with_changes(src__cls__IrisVip__Task__Reassert_dot_cls=task))
        self.assert_broken(result, "task-install", "src/cls/IrisVip/Task/Reassert.cls:6:", "without setting RunAsUser")
        self.only_rule(result, "task-install")

    def test_task_that_suspends_on_error(self):
        task = TASK.replace("Set task.SuspendOnError = 0", "Set task.SuspendOnError = 1")
        result = run_rules(with_changes(src__cls__IrisVip__Task__Reassert_dot_cls=task))
        self.assert_broken(result, "task-install", "sets SuspendOnError = 1; it must be 0")

    def test_task_without_mirror_status(self):
        task = TASK.replace("    Set task.MirrorStatus = 1\n", "")
        result = run_rules(with_changes(src__cls__IrisVip__Task__Reassert_dot_cls=task))
        self.assert_broken(result, "task-install", "without setting MirrorStatus")

    # guarded-catch ----------------------------------------------------------------------------------

    def test_unguarded_log_in_a_catch(self):
        zstart = ZSTART.replace('''        Try {
            Do ##class(%SYS.System).WriteToConsoleLog("ZSTART: "_ex.DisplayString(), , 2, "ZSTART")
        } Catch {
        }''', '''        Do ##class(%SYS.System).WriteToConsoleLog("ZSTART: "_ex.DisplayString(), , 2, "ZSTART")''')
        result = run_rules(with_changes(src__rtn___pct_ZSTART_dot_mac=zstart))
        self.assert_broken(result, "guarded-catch", "src/rtn/%ZSTART.mac:9:")
        self.only_rule(result, "guarded-catch")

    def test_unguarded_log_in_a_class_catch(self):
        vip = VIP.replace('''    Try {
        Do ##class(%SYS.System).WriteToConsoleLog(text, , 0, "DEMO")
    } Catch {
    }''', '''    Try {
        Set x = 1
    } Catch {
        Do ##class(%SYS.System).WriteToConsoleLog(text, , 0, "DEMO")
    }''')
        result = run_rules(with_changes(src__cls__IrisVip__VIP_dot_cls=vip))
        self.assert_broken(result, "guarded-catch", "src/cls/IrisVip/VIP.cls:")

    def test_log_outside_any_catch_is_fine(self):
        vip = VIP.replace('''    Try {
        Do ##class(%SYS.System).WriteToConsoleLog(text, , 0, "DEMO")
    } Catch {
    }''', '''    Do ##class(%SYS.System).WriteToConsoleLog(text, , 0, "DEMO")''')
        result = run_rules(with_changes(src__cls__IrisVip__VIP_dot_cls=vip))
        self.assertEqual(result.returncode, 0, result.stdout)



class AlertRuleTest(unittest.TestCase):
    """examples/prometheus-alert.yml asks only for metrics that IrisVip.Monitor produces."""

    @staticmethod
    def sensors() -> tuple[str, set[str], set[str]]:
        """The sensor's metric prefix, the metric names it sets and the holder states, read from its source."""
        sys.path.insert(0, HERE)
        from osparse import parse, walk  # noqa: E402 - the grammars are needed only here

        source = parse(OBJECTSCRIPT, "src/cls/IrisVip/Monitor.cls")
        text = source.data.decode("utf-8")
        product = re.search(r'Parameter PRODUCT = "([a-z_]+)";', text).group(1)
        holders = set(re.search(r'Parameter HOLDERS = "([a-z,]+)";', text).group(1).split(","))
        names = set()
        for node in walk(source.tree.root_node):
            if node.type == "set_target":
                match = re.fullmatch(r'facts\("([a-z_]+)"(?:,.*)?\)', source.text(node).strip())
                if match:
                    names.add(f"{product}_{match.group(1)}")
        return product, names, holders

    def test_rules_use_the_sensor_metrics(self):
        import yaml

        product, names, holders = self.sensors()
        self.assertIn("irisvip_holder", names)
        self.assertIn("irisvip_claim_allowed", names)
        with open(os.path.join(REPO, "examples", "prometheus-alert.yml"), encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
        rules = [rule for group in document["groups"] for rule in group["rules"]]
        self.assertTrue(any(rule["alert"] == "IrisVipPrimaryDoesNotHoldVip" for rule in rules))
        for rule in rules:
            with self.subTest(rule["alert"]):
                self.assertEqual(set(rule) - {"alert", "expr", "for", "labels", "annotations"}, set())
                self.assertRegex(rule["for"], r"^\d+[smh]$")
                self.assertIn(rule["labels"]["severity"], ("critical", "warning"))
                self.assertTrue(rule["annotations"]["summary"])
                used = set(re.findall(rf"\b{product}_[a-z_]+", rule["expr"]))
                self.assertTrue(used, rule["expr"])
                self.assertEqual(used - names, set(), f"metrics the sensor does not produce: {used - names}")
                for state in re.findall(r'irisvip_holder\{id="([a-z]+)"\}', rule["expr"]):
                    self.assertIn(state, holders)
                self.assertEqual(rule["expr"].count("("), rule["expr"].count(")"))


if __name__ == "__main__":
    unittest.main()
