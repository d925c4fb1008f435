#!/usr/bin/env python3
"""Static rules for the IRIS side of irisvip, checked without IRIS.

Usage: rules.py DIR

DIR is the IPM module: module.xml, src/ (classes and routines) and tests/ (the %UnitTest cases). Every
broken rule prints one line, "RULE: path:line: what is wrong and what to do", and each rule ends with a
line saying what it checked. Exits 1 when a rule is broken, 2 when the grammars are not installed.

job-only       ^ZMIRROR and ^%ZSTART never reach the library ($ZF) in their own process: the claim starts
               in a process of its own, with JOB, and a JOB in them has a timeout (a JOB without one waits
               for ever when no process can be started). Calls are followed through the classes and
               routines under src/: ##class(C).M(), ..M() (up the Extends chain), obj.M() (any of our
               methods named M), D label^ROUTINE and $$label^ROUTINE. A dynamic call on that path
               ($CLASSMETHOD, $METHOD, XECUTE, @indirection) is refused, since where it goes cannot be
               shown. Each of the two routines, when present, must start at least one JOB.
membership     every claim under src/ applies the membership rule first: a method that claims
               (Invoke("claim", ...) or InvokeAddresses("claim", ...), either with an operation that is not
               a literal, Claim(...), CallClaim(...), the literal "vip_claim") calls ClaimRuleNow or
               ClaimRule before it. Exempt are the library wrapper's own layers in IrisVip.VIP: Claim (the
               manual call), Invoke, InvokeAddresses, CallLibrary and CallClaim.
all-addresses  the settings may hold several addresses (^IrisVip("config") and ^IrisVip("addresses", name)),
               claimed and released together: outside IrisVip.VIP's address layer (the calls, the
               settings methods), no code under src/ reads ^IrisVip("config") or ^IrisVip("addresses"),
               calls GetConfig, GetAddress or ConfigFor, or calls Invoke; and a Claim, Release, Status or
               Check of IrisVip.VIP gets no config of its own (none, or ""), so that it acts on every
               address. Code that picked one config would move one address and leave the others behind.
tests-layout   the %UnitTest cases live in the folder module.xml's <UnitTest Name="..."> names, outside
               src/, in its Package; each file's path matches its class name; no class under src/ is a test
               case or in that package; every test case extends a base whose OnBeforeOneTest calls
               CaptureLog(1), so a test run writes nothing to messages.log; no test skips with
               $$$LogMessage (use $$$AssertSkipped) or writes to messages.log itself (WriteToConsoleLog).
task-install   a method that creates a %SYS.Task sets RunAsUser, SuspendOnError = 0 and MirrorStatus.
guarded-catch  a WriteToConsoleLog inside a Catch block sits in a Try of its own, so that a failure to
               log cannot escape from the Catch.
"""

from __future__ import annotations

import os
import re
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

from osparse import Source, parse, source_files, walk

WRAPPER = "IrisVip.VIP"
WRAPPER_LAYERS = {"Claim", "Invoke", "InvokeAddresses", "CallLibrary", "CallClaim"}
# IrisVip.VIP's methods that may pick one address's config: the calls and the settings methods.
ADDRESS_LAYER = {"claim", "release", "status", "check", "invoke", "invokeaddresses", "calllibrary", "getconfig",
                 "setconfig", "addressnames", "getaddress", "setaddress", "removeaddress", "configfor",
                 "listaddresses", "show"}
ADDRESS_NODES = re.compile(r'^\^IrisVip\(\s*"(config|addresses)"', re.IGNORECASE)
SINGLE_CONFIG_CALLS = {"getconfig", "getaddress", "configfor", "invoke"}
ADDRESS_CALLS = {"claim", "release", "status", "check"}
RULE_METHODS = {"claimrulenow", "claimrule"}
HOOK_ROUTINES = ("ZMIRROR", "%ZSTART")
DYNAMIC_FUNCTIONS = {"$classmethod", "$method", "$zobjclassmethod", "$zobjmethod"}
ZF = re.compile(r"\$zf\s*\(", re.IGNORECASE)
TESTCASE = "%unittest.testcase"


@dataclass
class Call:
    """One call in a unit: kind is class, relative, instance, routine or dynamic."""

    kind: str
    node: object
    target_class: str = ""
    method: str = ""
    routine: str = ""
    in_job: bool = False
    first_arg: object = None


@dataclass
class Unit:
    """A method of a class, or a whole routine."""

    key: str
    source: Source
    node: object
    class_name: str = ""
    method: str = ""
    calls: list = field(default_factory=list)
    jobs: list = field(default_factory=list)
    zf: list = field(default_factory=list)
    strings: list = field(default_factory=list)

    def line(self, node=None) -> int:
        return (node if node is not None else self.node).start_point.row + 1

    def where(self, node=None) -> str:
        return f"{self.source.path}:{self.line(node)}"


@dataclass
class Classdef:
    name: str
    source: Source
    node: object
    extends: list
    methods: dict


class Module:
    """Every class and routine of DIR, parsed, with its units and calls."""

    def __init__(self, directory: str):
        self.directory = directory
        self.sources: list[Source] = [parse(directory, relative) for relative in source_files(directory)]
        self.classes: dict[str, Classdef] = {}
        self.routines: dict[str, Unit] = {}
        self.units: list[Unit] = []
        self.parse_errors = [s.path for s in self.sources if s.tree.root_node.has_error]
        self.duplicates: list[tuple[str, str, str]] = []
        for source in self.sources:
            if source.path.lower().endswith(".cls"):
                self._add_class(source)
            else:
                self._add_routine(source)

    def _add_class(self, source: Source) -> None:
        definition = next((n for n in source.tree.root_node.children if n.type == "class_definition"), None)
        if definition is None:
            return
        name_node = next((c for c in definition.children if c.type == "class_name"), None)
        if name_node is None:
            return
        name = source.text(name_node).strip()
        extends = []
        for child in definition.children:
            if child.type == "class_extends":
                extends = [source.text(c).strip() for c in child.children if c.type == "class_name"]
        if name.lower() in self.classes:
            self.duplicates.append((source.path, name, self.classes[name.lower()].source.path))
        classdef = Classdef(name, source, definition, extends, {})
        for node in walk(definition):
            if node.type != "method_definition":
                continue
            method_name = next((c for c in node.children if c.type == "method_name"), None)
            if method_name is None:
                continue
            method = source.text(method_name).strip()
            unit = Unit(f"{name}:{method}", source, node, name, method)
            self._scan(unit)
            classdef.methods[method.lower()] = unit
            self.units.append(unit)
        self.classes[name.lower()] = classdef

    def _add_routine(self, source: Source) -> None:
        root = source.tree.root_node
        name = ""
        for node in walk(root):
            if node.type == "routine_name" and node.parent is not None and node.parent.type == "routine_definition":
                name = source.text(node).strip()
                break
        if not name:
            name = os.path.splitext(os.path.basename(source.path))[0]
        unit = Unit(f"^{name}", source, root)
        self._scan(unit)
        self.routines[name.upper()] = unit
        self.units.append(unit)

    def _scan(self, unit: Unit) -> None:
        """Collects the calls, JOB commands, $ZF calls and string literals of a unit."""
        source = unit.source

        def visit(node, in_job: bool) -> None:
            kind = node.type
            if kind == "command_job":
                unit.jobs.append(node)
                in_job = True
            elif kind == "class_method_call":
                class_ref = next((c for c in node.children if c.type == "class_ref"), None)
                class_name = next((c for c in class_ref.children if c.type == "class_name"), None) if class_ref else None
                method = next((c for c in node.children if c.type == "method_name"), None)
                if class_name is not None and method is not None:
                    unit.calls.append(
                        Call("class", node, source.text(class_name).strip(), source.text(method).strip(),
                             in_job=in_job, first_arg=_first_arg(node))
                    )
            elif kind == "oref_method":
                method = next((c for c in node.children if c.type == "method_name"), None)
                if method is not None:
                    relative = node.parent is not None and node.parent.type == "relative_dot_method"
                    unit.calls.append(
                        Call("relative" if relative else "instance", node, unit.class_name if relative else "",
                             source.text(method).strip(), in_job=in_job, first_arg=_first_arg(node))
                    )
            elif kind in ("routine_tag_call", "extrinsic_function"):
                line_ref = next((c for c in node.children if c.type == "line_ref"), None)
                if line_ref is None and kind == "routine_tag_call":
                    line_ref = node
                if line_ref is not None and any(c.type == "indirection" for c in walk(line_ref)):
                    unit.calls.append(Call("dynamic", node, method="@indirection", in_job=in_job))
                elif line_ref is not None:
                    routine = next((c for c in walk(line_ref) if c.type == "routine_name"), None)
                    if routine is not None:
                        unit.calls.append(Call("routine", node, routine=source.text(routine).strip(), in_job=in_job))
            elif kind == "system_defined_function":
                text = source.text(node)
                name = text.split("(", 1)[0].strip().lower()
                if ZF.match(text):
                    if not in_job:
                        unit.zf.append(node)
                elif name in DYNAMIC_FUNCTIONS:
                    unit.calls.append(Call("dynamic", node, method=name, in_job=in_job))
            elif kind == "command_xecute":
                unit.calls.append(Call("dynamic", node, method="XECUTE", in_job=in_job))
            elif kind == "string_literal":
                unit.strings.append(node)
            for child in node.children:
                visit(child, in_job)

        visit(unit.node, False)

    # Resolution of a call to our units ------------------------------------------------------------

    def method_of(self, class_name: str, method: str, seen: set | None = None) -> Unit | None:
        """Method in class_name or up its Extends chain, among our classes."""
        seen = seen if seen is not None else set()
        key = class_name.lower()
        if key in seen or key not in self.classes:
            return None
        seen.add(key)
        classdef = self.classes[key]
        if method.lower() in classdef.methods:
            return classdef.methods[method.lower()]
        for parent in classdef.extends:
            found = self.method_of(parent, method, seen)
            if found is not None:
                return found
        return None

    def targets(self, call: Call) -> list[Unit]:
        if call.kind in ("class", "relative"):
            found = self.method_of(call.target_class, call.method)
            return [found] if found is not None else []
        if call.kind == "instance":
            return [u for u in self.units if u.method and u.method.lower() == call.method.lower()]
        if call.kind == "routine":
            found = self.routines.get(call.routine.upper())
            return [found] if found is not None else []
        return []

    def extends_testcase(self, class_name: str, seen: set | None = None) -> bool:
        seen = seen if seen is not None else set()
        key = class_name.lower()
        if key == TESTCASE:
            return True
        if key in seen or key not in self.classes:
            return False
        seen.add(key)
        return any(self.extends_testcase(parent, seen) for parent in self.classes[key].extends)

    def extends_any(self, class_name: str, bases: set, seen: set | None = None) -> bool:
        seen = seen if seen is not None else set()
        key = class_name.lower()
        if key in bases:
            return True
        if key in seen or key not in self.classes:
            return False
        seen.add(key)
        return any(self.extends_any(parent, bases, seen) for parent in self.classes[key].extends)


def _first_arg(node):
    """The first argument node of a call (method_args/method_arg), or None."""
    args = next((c for c in node.children if c.type == "method_args"), None)
    if args is None:
        return None
    return next((c for c in args.children if c.type == "method_arg"), None)


def _leading_arg(node):
    """The first argument node of a call, or None when there is none or it is left out (M(, x))."""
    args = next((c for c in node.children if c.type == "method_args"), None)
    if args is None:
        return None
    for child in args.children:
        if child.type == "method_arg":
            return child
        if child.type == ",":
            return None
    return None


def _literal(source: Source, arg) -> str | None:
    if arg is None:
        return None
    text = source.text(arg).strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"' and '"' not in text[1:-1].replace('""', ""):
        return text[1:-1].replace('""', '"')
    return None


def under(source: Source, folder: str) -> bool:
    return source.path == folder or source.path.startswith(folder.rstrip("/") + "/")


# Rules ----------------------------------------------------------------------------------------------


def job_only(module: Module) -> tuple[list[str], str]:
    problems, checked = [], []
    for name in HOOK_ROUTINES:
        start = module.routines.get(name.upper())
        if start is None:
            continue
        checked.append(f"^{name}")
        parents: dict[str, tuple[str, Call | None]] = {start.key: ("", None)}
        queue = [start]
        by_key = {start.key: start}
        jobs = []
        while queue:
            unit = queue.pop(0)
            path = _path(parents, unit.key)
            for node in unit.zf:
                problems.append(
                    f"job-only: {unit.where(node)}: ^{name} calls the library ($ZF) in its own process through "
                    f"{path}; start the claim with JOB (IrisVip.Claimer.Start) instead"
                )
            for job in unit.jobs:
                jobs.append((unit, job))
            for call in unit.calls:
                if call.in_job:
                    continue
                if call.kind == "dynamic":
                    problems.append(
                        f"job-only: {unit.where(call.node)}: ^{name} makes a dynamic call ({call.method}) through "
                        f"{path}; where it goes cannot be shown, so call the method by name"
                    )
                    continue
                for target in module.targets(call):
                    if target.key not in parents:
                        parents[target.key] = (unit.key, call)
                        by_key[target.key] = target
                        queue.append(target)
        for unit, job in jobs:
            if not any(c.type == "timeout" for a in job.children if a.type == "job_argument" for c in a.children):
                problems.append(
                    f"job-only: {unit.where(job)}: JOB without a timeout in a path of ^{name}: it waits for ever "
                    "when no process can be started; add one (JOB ...::5)"
                )
        if not jobs:
            problems.append(
                f"job-only: {start.where()}: ^{name} starts no claimer: no JOB is reached from it "
                "(the claim must run in a process of its own, started with JOB)"
            )
    return problems, f"job-only: checked {', '.join(checked) or 'no hook routine'}"


def _path(parents: dict, key: str) -> str:
    chain = []
    while key:
        chain.append(key)
        key = parents[key][0]
    return " -> ".join(reversed(chain))


def membership(module: Module) -> tuple[list[str], str]:
    problems, sites = [], 0
    for unit in module.units:
        if not under(unit.source, "src"):
            continue
        if unit.class_name.lower() == WRAPPER.lower() and unit.method.lower() in {m.lower() for m in WRAPPER_LAYERS}:
            continue
        claims = []
        rule_at = None
        for call in unit.calls:
            method = call.method.lower()
            if method in RULE_METHODS and (call.kind == "relative" and unit.class_name.lower() == WRAPPER.lower()
                                           or call.target_class.lower() == WRAPPER.lower()):
                position = call.node.start_byte
                rule_at = position if rule_at is None else min(rule_at, position)
            elif method in ("invoke", "invokeaddresses"):
                op = _literal(unit.source, call.first_arg)
                if op is None or op.lower() == "claim":
                    claims.append(call.node)
            elif method in ("claim", "callclaim"):
                claims.append(call.node)
        claims += [n for n in unit.strings if unit.source.text(n).strip().lower() == '"vip_claim"']
        sites += len(claims)
        for node in claims:
            if rule_at is None or rule_at > node.start_byte:
                problems.append(
                    f"membership: {unit.where(node)}: {unit.key} claims without the membership rule; claim "
                    f"through ##class({WRAPPER}).GuardedClaim(), which applies ClaimRule first"
                )
    return problems, f"membership: checked {sites} claim site(s) under src/"


def _targets_wrapper(unit: Unit, call: Call) -> bool:
    """A call of a method of IrisVip.VIP (##class(IrisVip.VIP).M() or ..M() inside it)."""
    if call.kind == "class":
        return call.target_class.lower() == WRAPPER.lower()
    return call.kind == "relative" and unit.class_name.lower() == WRAPPER.lower()


def all_addresses(module: Module) -> tuple[list[str], str]:
    problems, checked = [], 0
    for unit in module.units:
        if not under(unit.source, "src"):
            continue
        if unit.class_name.lower() == WRAPPER.lower() and unit.method.lower() in ADDRESS_LAYER:
            continue
        checked += 1
        for node in walk(unit.node):
            if node.type == "gvn" and ADDRESS_NODES.match(unit.source.text(node).strip()):
                problems.append(
                    f"all-addresses: {unit.where(node)}: {unit.key} reads {unit.source.text(node).strip()}: one address "
                    f"of several; call ##class({WRAPPER}).Claim(\"\")/Release(\"\")/Status(\"\") or GuardedClaim, "
                    "which act on every address"
                )
        for call in unit.calls:
            if not _targets_wrapper(unit, call):
                continue
            method = call.method.lower()
            if method in SINGLE_CONFIG_CALLS:
                problems.append(
                    f"all-addresses: {unit.where(call.node)}: {unit.key} calls {call.method}, which picks one "
                    "config: the other addresses would be left behind; use InvokeAddresses, GuardedClaim or "
                    "Claim/Release/Status/Check without a config"
                )
            elif method in ADDRESS_CALLS:
                config = _leading_arg(call.node)
                if config is not None and unit.source.text(config).strip() not in ("", '""'):
                    problems.append(
                        f"all-addresses: {unit.where(call.node)}: {unit.key} calls {call.method} with a config of "
                        f"its own ({unit.source.text(config).strip()}): one address; pass \"\" so that every "
                        "address is used"
                    )
    return problems, f"all-addresses: checked {checked} method(s) and routine(s) under src/"


def tests_layout(module: Module) -> tuple[list[str], str]:
    problems = []
    module_xml = os.path.join(module.directory, "module.xml")
    folder, package = "", ""
    try:
        tree = ElementTree.parse(module_xml)
        element = next(iter(tree.iter("UnitTest")), None)
        if element is None:
            problems.append("tests-layout: module.xml: no <UnitTest Name=\"/tests\" Package=\"...\"/>: IPM runs no test")
        else:
            folder = element.get("Name", "").strip("/")
            package = element.get("Package", "")
            if not folder or folder == "src" or folder.startswith("src/"):
                problems.append(
                    f"tests-layout: module.xml: <UnitTest Name=\"{element.get('Name', '')}\"> must name a folder of "
                    "its own outside src/ (IPM's convention: /tests)"
                )
                folder = ""
            elif not os.path.isdir(os.path.join(module.directory, folder)):
                problems.append(f"tests-layout: module.xml: <UnitTest Name=\"/{folder}\"> names no folder")
            if not package:
                problems.append("tests-layout: module.xml: <UnitTest> has no Package")
    except (OSError, ElementTree.ParseError) as error:
        problems.append(f"tests-layout: module.xml: cannot be read: {error}")

    # The capture bases: classes whose OnBeforeOneTest turns the log capture on.
    bases = set()
    for classdef in module.classes.values():
        unit = classdef.methods.get("onbeforeonetest")
        if unit is not None and any(
            c.method.lower() == "capturelog" and c.first_arg is not None and unit.source.text(c.first_arg).strip() == "1"
            for c in unit.calls
        ):
            bases.add(classdef.name.lower())

    cases = 0
    for classdef in module.classes.values():
        source = classdef.source
        where = f"{source.path}:{classdef.node.start_point.row + 1}"
        in_package = bool(package) and (classdef.name == package or classdef.name.startswith(package + "."))
        is_case = module.extends_testcase(classdef.name)
        if under(source, "src"):
            if is_case:
                problems.append(f"tests-layout: {where}: {classdef.name} is a test case under src/; move it to /{folder or 'tests'}")
            elif in_package:
                problems.append(f"tests-layout: {where}: {classdef.name} is in the test package {package} but under src/")
            continue
        if not folder or not under(source, folder):
            continue
        expected = source.path[len(folder) + 1:-len(".cls")].replace("/", ".")
        if classdef.name != expected:
            problems.append(f"tests-layout: {where}: class {classdef.name} is in {source.path}; its path must be {folder}/{classdef.name.replace('.', '/')}.cls")
        if package and not in_package:
            problems.append(f"tests-layout: {where}: {classdef.name} is not in the test package {package}")
        if is_case:
            cases += 1
            if classdef.name.lower() not in bases and not module.extends_any(classdef.name, bases):
                problems.append(
                    f"tests-layout: {where}: {classdef.name} does not extend a base whose OnBeforeOneTest calls "
                    "CaptureLog(1): its log lines would go to messages.log"
                )
    for unit in module.units:
        if not folder or not under(unit.source, folder):
            continue
        for node in walk(unit.node):
            if node.type == "macro_function" and unit.source.text(node).lower().startswith("$$$logmessage") \
                    and "skip" in unit.source.text(node).lower():
                problems.append(f"tests-layout: {unit.where(node)}: a skip written with $$$LogMessage; use $$$AssertSkipped")
        for call in unit.calls:
            if call.method.lower() == "writetoconsolelog":
                problems.append(f"tests-layout: {unit.where(call.node)}: a test writes to messages.log; use IrisVip.VIP.Log, which the tests capture")
    if folder and cases == 0:
        problems.append(f"tests-layout: {folder}/: no %UnitTest.TestCase found")
    return problems, f"tests-layout: checked {cases} test case(s) in /{folder}"


def task_install(module: Module) -> tuple[list[str], str]:
    problems, checked = [], 0
    for unit in module.units:
        if not under(unit.source, "src"):
            continue
        creates = [c for c in unit.calls if c.kind == "class" and c.target_class.lower() == "%sys.task" and c.method.lower() == "%new"]
        if not creates:
            continue
        checked += 1
        assigned = {}
        for node in walk(unit.node):
            if node.type != "set_argument":
                continue
            target = next((c for c in node.children if c.type == "set_target"), None)
            value = next((c for c in node.children if c.type == "expression"), None)
            if target is None:
                continue
            match = re.search(r"\.(\w+)$", unit.source.text(target).strip())
            if match:
                assigned[match.group(1).lower()] = unit.source.text(value).strip() if value is not None else ""
        for prop, wanted in (("RunAsUser", None), ("SuspendOnError", "0"), ("MirrorStatus", None)):
            value = assigned.get(prop.lower())
            if value is None:
                problems.append(f"task-install: {unit.where(creates[0].node)}: {unit.key} creates a %SYS.Task without setting {prop}")
            elif wanted is not None and value != wanted:
                problems.append(f"task-install: {unit.where(creates[0].node)}: {unit.key} sets {prop} = {value}; it must be {wanted}")
    return problems, f"task-install: checked {checked} method(s) that create a %SYS.Task"


def guarded_catch(module: Module) -> tuple[list[str], str]:
    problems, checked = [], 0
    for unit in module.units:
        for call in unit.calls:
            if call.method.lower() != "writetoconsolelog":
                continue
            checked += 1
            # Walk out from the call: a Try body met on the way guards it (an exception there is caught);
            # a Catch block met before any Try body does not.
            current, in_catch, guarded = call.node, False, False
            while current is not unit.node and current.parent is not None:
                parent = current.parent
                if parent.type == "command_trycatch":
                    if current.type == "catch_block":
                        in_catch = True
                    else:
                        guarded = True
                        break
                current = parent
            if in_catch and not guarded:
                problems.append(
                    f"guarded-catch: {unit.where(call.node)}: WriteToConsoleLog in a Catch without a Try of its "
                    "own: a failure to log would escape from the Catch; wrap it in Try { } Catch { }"
                )
    return problems, f"guarded-catch: checked {checked} WriteToConsoleLog call(s)"


RULES = (job_only, membership, all_addresses, tests_layout, task_install, guarded_catch)


def check(directory: str) -> tuple[list[str], list[str]]:
    module = Module(directory)
    problems = [f"parse: {path}: has syntax errors (see parse_check.py); its rules cannot be read reliably" for path in module.parse_errors]
    problems += [f"duplicate: {path}: class {name} is also defined in {other}; one would hide the other"
                 for path, name, other in module.duplicates]
    summaries = []
    for rule in RULES:
        found, summary = rule(module)
        problems += found
        summaries.append(summary)
    return problems, summaries


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: rules.py DIR\n")
        return 2
    problems, summaries = check(argv[1])
    for line in summaries:
        print(line)
    for problem in problems:
        print(problem)
    print(f"{len(RULES)} rules, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
