#!/usr/bin/env python3
"""Static inventory of the callout functions the ObjectScript code calls, without IRIS.

Usage: zf_calls.py DIR

Finds every $ZF(-4,3,lib,"name") (function id lookup) under DIR and the $ZF(-5,lib,id,...) calls
that use that id, and prints a JSON list, one entry per lookup:

    [{"name": "vip_claim", "inputs": 1, "where": "src/cls/IrisVip/VIP.cls:123"}, ...]

"inputs" is the number of arguments passed after the function id (trailing omitted arguments are
not counted): a "cC" entry called with only its input string gives 1. A call is matched to a lookup
when the $ZF(-4,3,...) is written directly as its function-id argument, or when the lookup is
assigned with Set to a local variable that the call passes as its function id within the same method
or procedure (or, outside any, the same routine). $ZF(-3,lib,"name",...) is listed too, and
$ZF(-6,index,id,...) is matched like $ZF(-5).

Exits 1, with the reasons on stderr, when a file does not parse, when a looked-up name is not a string literal, when a lookup
is never called, when one lookup is called with different argument counts, when a $ZF(-5)/$ZF(-6)
call cannot be matched to a lookup, or when no lookup is found at all.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field

from osparse import Source, parse, source_files, walk

ZF_CALL = re.compile(r"\$zf\s*\(", re.IGNORECASE)
SCOPES = {"method_definition", "procedure"}


@dataclass
class Call:
    """One $ZF(...) call: its node and its argument positions (None for an omitted argument)."""

    source: Source
    node: object
    args: list = field(default_factory=list)

    def arg_text(self, index: int) -> str:
        if index >= len(self.args) or self.args[index] is None:
            return ""
        return self.source.text(self.args[index]).strip()

    def where(self) -> str:
        return f"{self.source.path}:{self.node.start_point.row + 1}"

    def inputs_after(self, index: int) -> int:
        """Arguments after position `index`, not counting trailing omitted ones."""
        rest = self.args[index + 1 :]
        while rest and rest[-1] is None:
            rest.pop()
        return len(rest)

    def subcode(self) -> str:
        return self.arg_text(0).replace(" ", "")


def arguments(node) -> list:
    """The argument positions of a system function call, None where an argument is left out."""
    positions, current, seen_any = [], None, False
    for child in node.children:
        if child.type == "method_arg":
            current, seen_any = child, True
        elif child.type == ",":
            positions.append(current)
            current, seen_any = None, True
        elif child.type == ")":
            if seen_any:
                positions.append(current)
    return positions


def zf_calls(source: Source) -> list[Call]:
    calls = []
    for node in walk(source.tree.root_node):
        if node.type == "system_defined_function" and ZF_CALL.match(source.text(node)):
            calls.append(Call(source, node, arguments(node)))
    return calls


def string_literal(source: Source, arg) -> str | None:
    """The value of an argument that is exactly one string literal, else None."""
    if arg is None:
        return None
    node = arg
    while node.named_child_count == 1 and node.type != "string_literal":
        node = node.named_children[0]
    if node.type != "string_literal" or source.text(node).strip() != source.text(arg).strip():
        return None
    text = source.text(node).strip()
    return text[1:-1].replace('""', '"')


def scope_of(node):
    """The enclosing method or procedure, or the file's root node."""
    current = node.parent
    while current is not None:
        if current.type in SCOPES:
            return current
        if current.parent is None:
            return current
        current = current.parent
    return node


def assigned_variable(source: Source, node) -> str | None:
    """The local variable a `Set var = <node>` assigns the call to, if that is how it is used."""
    expression = node.parent
    if expression is None or expression.type != "expression":
        return None
    if source.text(expression).strip() != source.text(node).strip():
        return None
    set_argument = expression.parent
    if set_argument is None or set_argument.type != "set_argument":
        return None
    targets = [c for c in set_argument.named_children if c.type == "set_target"]
    if len(targets) != 1:
        return None
    target = source.text(targets[0]).strip()
    return target if re.fullmatch(r"%?[A-Za-z][A-Za-z0-9]*", target) else None


def same_node(a, b) -> bool:
    return a is not None and b is not None and (a.start_byte, a.end_byte) == (b.start_byte, b.end_byte)


def inventory(directory: str) -> tuple[list[dict], list[str]]:
    entries, errors = [], []
    for relative in source_files(directory):
        source = parse(directory, relative)
        if source.tree.root_node.has_error:
            errors.append(f"{source.path}: has syntax errors (see parse_check.py); its calls cannot be read reliably")
        calls = zf_calls(source)
        lookups = [c for c in calls if c.subcode() == "-4" and c.arg_text(1) == "3"]
        invocations = [c for c in calls if c.subcode() in ("-5", "-6")]
        matched = set()

        for lookup in lookups:
            name = string_literal(source, lookup.args[3] if len(lookup.args) > 3 else None)
            if name is None:
                errors.append(
                    f"{lookup.where()}: the function name in {source.text(lookup.node)} is not a string literal"
                )
                continue
            variable = assigned_variable(source, lookup.node)
            scope = scope_of(lookup.node)
            counts = []
            for index, invocation in enumerate(invocations):
                function_id = invocation.args[2] if len(invocation.args) > 2 else None
                if function_id is None:
                    continue
                direct = any(same_node(n, lookup.node) for n in walk(function_id))
                by_variable = (
                    variable is not None
                    and invocation.arg_text(2) == variable
                    and same_node(scope_of(invocation.node), scope)
                )
                if direct or by_variable:
                    matched.add(index)
                    counts.append(invocation.inputs_after(2))
            if not counts:
                errors.append(f"{lookup.where()}: {name}: no $ZF(-5,...) call uses this function id")
                continue
            if len(set(counts)) > 1:
                errors.append(f"{lookup.where()}: {name}: called with different input counts {sorted(set(counts))}")
                continue
            entries.append({"name": name, "inputs": counts[0], "where": lookup.where()})

        for index, invocation in enumerate(invocations):
            if index not in matched:
                errors.append(
                    f"{invocation.where()}: {source.text(invocation.node)}: its function id comes from no "
                    "$ZF(-4,3,...,\"name\") in the same method"
                )

        for direct_call in (c for c in calls if c.subcode() == "-3"):
            name = string_literal(source, direct_call.args[2] if len(direct_call.args) > 2 else None)
            if name is None:
                errors.append(f"{direct_call.where()}: the function name in $ZF(-3,...) is not a string literal")
                continue
            entries.append({"name": name, "inputs": direct_call.inputs_after(2), "where": direct_call.where()})

    if not entries and not errors:
        errors.append(f"no $ZF(-4,3,...) function lookup found under {directory}")
    return entries, errors


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: zf_calls.py DIR\n")
        return 2
    entries, errors = inventory(argv[1])
    print(json.dumps(entries, indent=2))
    for error in errors:
        sys.stderr.write(f"error: {error}\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
