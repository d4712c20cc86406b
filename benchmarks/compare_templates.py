"""Compares the templates of two cloud assemblies byte for byte (e.g. `cdk.out` of main and of a branch that
changes how stacks are built but should not change what they deploy).

    .venv/bin/python benchmarks/compare_templates.py OLD_CDK_OUT NEW_CDK_OUT

The one thing normalised: CDKMetadata's `Analytics` value (version reporting: a compressed list of the construct
classes a stack uses, which changes whenever the way a stack is built does). Exit 0 when every template is
identical after that, 1 otherwise (with a diff of the first differences).
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

ANALYTICS = re.compile(r'"Analytics": "[^"]*"')


def normalised(text: str) -> str:
    return ANALYTICS.sub('"Analytics": "<version reporting>"', text)


def compare(old: Path, new: Path) -> list[str]:
    """Problems found, as lines to print; empty when the assemblies have the same templates."""
    old_names = {p.name for p in old.glob("*.template.json")}
    new_names = {p.name for p in new.glob("*.template.json")}
    problems = [f"only in {old}: {name}" for name in sorted(old_names - new_names)]
    problems += [f"only in {new}: {name}" for name in sorted(new_names - old_names)]
    for name in sorted(old_names & new_names):
        before, after = normalised((old / name).read_text()), normalised((new / name).read_text())
        if before != after:
            diff = difflib.unified_diff(before.splitlines(), after.splitlines(), name, name, lineterm="")
            problems += [f"differs: {name}", *list(diff)[:40]]
    return problems


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    old, new = Path(sys.argv[1]), Path(sys.argv[2])
    problems = compare(old, new)
    count = len(list(old.glob("*.template.json")))
    print("\n".join(problems) if problems else f"{count} templates compared: IDENTICAL")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
