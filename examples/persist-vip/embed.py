#!/usr/bin/env python3
"""Copy persist-vip.sh into the members' user data in examples/cloudformation.yaml.

The template carries the script verbatim in a quoted heredoc (<<'IRISVIP_PERSIST_VIP') inside a
YAML block scalar, once per member. Run this after editing the script:

    python3 examples/persist-vip/embed.py [--check]

--check changes nothing and exits 1 when a copy differs (tests/examples runs the same check).
"""

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "persist-vip.sh"
TEMPLATE = HERE.parent / "cloudformation.yaml"
MARK = "IRISVIP_PERSIST_VIP"
OPEN = re.compile(r"^(?P<indent> *)cat > \S+ <<'" + MARK + "'$")


def embedded(template_text: str, script_text: str) -> str:
    """The template text with every heredoc body replaced by the script, indented to match."""
    script_lines = script_text.splitlines()
    if any(line.strip() == MARK for line in script_lines):
        raise ValueError(f"the script must not contain a line {MARK}")
    out, lines, i = [], template_text.splitlines(), 0
    while i < len(lines):
        out.append(lines[i])
        m = OPEN.match(lines[i])
        i += 1
        if not m:
            continue
        indent = m.group("indent")
        end = indent + MARK
        while i < len(lines) and lines[i] != end:
            i += 1
        if i == len(lines):
            raise ValueError(f"heredoc opened at line {len(out)} has no {MARK} terminator")
        # Empty lines stay empty: YAML block scalars allow it, and no trailing blanks appear.
        out.extend(indent + line if line else "" for line in script_lines)
    return "\n".join(out) + "\n"


def main() -> int:
    check = sys.argv[1:] == ["--check"]
    current = TEMPLATE.read_text()
    wanted = embedded(current, SCRIPT.read_text())
    if current == wanted:
        print(f"{TEMPLATE.name}: the user data carries the current {SCRIPT.name}")
        return 0
    if check:
        print(f"{TEMPLATE.name}: the user data differs from {SCRIPT.name}; run {Path(__file__).name}")
        return 1
    TEMPLATE.write_text(wanted)
    print(f"{TEMPLATE.name}: user data refreshed from {SCRIPT.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
