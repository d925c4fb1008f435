"""Shared helpers for the ObjectScript checks: find the sources and parse them with tree-sitter.

Needs only the PyPI packages `tree-sitter` and `tree-sitter-objectscript`. The latter ships one
grammar per file kind: `tree_sitter_objectscript_udl` for class definitions (.cls) and
`tree_sitter_objectscript_routine` for routines and include files (.mac, .int, .inc, .rtn).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Iterator

CLASS_SUFFIXES = (".cls",)
ROUTINE_SUFFIXES = (".mac", ".int", ".inc", ".rtn")

try:
    from tree_sitter import Language, Node, Parser, Tree
except ImportError as error:  # pragma: no cover - depends on the environment
    sys.stderr.write(f"tree-sitter is not installed ({error}); pip install tree-sitter tree-sitter-objectscript\n")
    raise SystemExit(2)


def _language(kind: str) -> Language:
    """Returns the grammar for "udl" (classes) or "routine", whichever module layout the package has."""
    try:
        if kind == "udl":
            import tree_sitter_objectscript_udl as module

            return Language(module.language_objectscript_udl())
        import tree_sitter_objectscript_routine as module

        return Language(module.language_objectscript_routine())
    except ImportError:
        pass
    try:  # Older or newer layouts expose both grammars from the main module.
        import tree_sitter_objectscript as module

        return Language(getattr(module, f"language_{kind}")())
    except (ImportError, AttributeError) as error:
        sys.stderr.write(
            f"no ObjectScript {kind} grammar found ({error}); pip install tree-sitter-objectscript\n"
        )
        raise SystemExit(2)


_PARSERS: dict[str, Parser] = {}


def parser_for(path: str) -> Parser:
    """The parser for a source file, chosen by its suffix."""
    kind = "udl" if path.lower().endswith(CLASS_SUFFIXES) else "routine"
    if kind not in _PARSERS:
        _PARSERS[kind] = Parser(_language(kind))
    return _PARSERS[kind]


def source_files(directory: str) -> list[str]:
    """Every class, routine and include file under `directory`, sorted, as paths relative to it."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.lower().endswith(CLASS_SUFFIXES + ROUTINE_SUFFIXES):
                found.append(os.path.relpath(os.path.join(root, name), directory))
    return sorted(found)


@dataclass
class Source:
    """One parsed file: its path relative to the scanned directory, its bytes and its tree."""

    path: str
    data: bytes
    tree: Tree

    def text(self, node: Node) -> str:
        return self.data[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def parse(directory: str, relative: str) -> Source:
    with open(os.path.join(directory, relative), "rb") as handle:
        data = handle.read()
    return Source(relative.replace(os.sep, "/"), data, parser_for(relative).parse(data))


def walk(node: Node) -> Iterator[Node]:
    """Every node under `node`, `node` included, in document order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))
