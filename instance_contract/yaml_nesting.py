"""How deep YAML may nest, for every reader of YAML the control plane writes or people write: the manifests (the
Foundry) and an instance's bundle (the runtime at start).

libyaml's composer recurses in C, so a few kilobytes of `[[[[...` overflow the stack and kill the process before any
model sees the document. The check walks the parser's events (the parser is iterative) and stops at the first
collection nested too deep, before anything is composed. Depends on PyYAML only.
"""

from __future__ import annotations

import yaml

MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences; real manifests nest about 8 deep."""

FAST_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when present (20x faster on large fleets); the pure-Python one otherwise. Same documents."""


class NestingTooDeepError(ValueError):
    """`line`: where the collection past the bound starts (1-based), when the parser knows."""

    def __init__(self, line: int | None, limit: int) -> None:
        self.line = line
        self.limit = limit
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"mappings and lists are nested more than {limit} levels deep{where}")


def check_nesting(text: str, limit: int = MAX_DEPTH) -> None:
    """Raises NestingTooDeepError past `limit`; a syntax error is left to the reader's own parse (yaml.YAMLError)."""
    depth = 0
    for event in yaml.parse(text, Loader=FAST_SAFE_LOADER):
        kind = event.__class__
        if kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            depth += 1
            if depth > limit:
                raise NestingTooDeepError(event.start_mark.line + 1 if event.start_mark else None, limit)
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            depth -= 1
