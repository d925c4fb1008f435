#!/usr/bin/env python3
"""Syntax check of the ObjectScript sources, without IRIS.

Usage: parse_check.py DIR

Parses every .cls under DIR with the class (UDL) grammar and every .mac/.int/.inc/.rtn with the
routine grammar of tree-sitter-objectscript. Prints each file with OK, or with the position
(line:column, 1-based) and text of every syntax error. Exits 1 when a file has an error or when
no file was found, 2 when the grammars are not installed.

Besides the grammar, it flags one rule the grammar accepts but the IRIS compiler refuses: a QUIT with
an argument inside a TRY or CATCH block.
"""

from __future__ import annotations

import sys

from osparse import Source, parse, source_files, walk

SCOPES = {"method_definition", "procedure"}


def syntax_errors(source: Source) -> list[str]:
    """One line per ERROR or MISSING node; nested errors inside an ERROR node are not repeated."""
    problems = []
    skip_below = None
    for node in walk(source.tree.root_node):
        if skip_below is not None:
            if node.start_byte >= skip_below.start_byte and node.end_byte <= skip_below.end_byte:
                continue
            skip_below = None
        if node.is_error or node.is_missing:
            line, column = node.start_point.row + 1, node.start_point.column + 1
            if node.is_missing:
                problems.append(f"{line}:{column}: missing {node.type!r}")
            else:
                text = source.text(node).strip().replace("\n", "\\n")
                if len(text) > 80:
                    text = text[:77] + "..."
                problems.append(f"{line}:{column}: syntax error at {text!r}")
                skip_below = node
    if source.tree.root_node.has_error and not problems:
        problems.append("1:1: syntax error (the parser reported one but located no node)")
    return problems + quit_in_try(source)


def quit_in_try(source: Source) -> list[str]:
    """QUIT with an argument inside TRY or CATCH: a compile error in IRIS (use RETURN, or set and QUIT)."""
    problems = []
    for node in walk(source.tree.root_node):
        if node.type != "command_quit" or not any(c.type == "expression" for c in node.children):
            continue
        ancestor = node.parent
        while ancestor is not None and ancestor.type not in SCOPES:
            if ancestor.type == "command_trycatch":
                line, column = node.start_point.row + 1, node.start_point.column + 1
                problems.append(f"{line}:{column}: QUIT with an argument inside TRY/CATCH: {source.text(node)!r}")
                break
            ancestor = ancestor.parent
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: parse_check.py DIR\n")
        return 2
    directory = argv[1]
    files = source_files(directory)
    if not files:
        print(f"no ObjectScript sources (.cls, .mac, .int, .inc, .rtn) under {directory}")
        return 1
    failed = 0
    for relative in files:
        source = parse(directory, relative)
        problems = syntax_errors(source)
        if problems:
            failed += 1
            print(f"{source.path}: ERROR")
            for problem in problems:
                print(f"  {source.path}:{problem}")
        else:
            print(f"{source.path}: OK")
    print(f"{len(files) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
