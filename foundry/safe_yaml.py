"""Strict YAML reading for files people write: one mapping per file, no duplicate keys, no aliases.

Aliases are refused outright: they are the mechanism of "billion laughs" bombs and nothing in a manifest needs them.
The loader also records the line of every key so that errors can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1_048_576
"""Specs, templates and settings: a person writes these by hand."""
MAX_MANIFEST_BYTES = 64 * 1_048_576
"""Environment manifests list every binding of a fleet: about 3.6 MB per 1,000 instances of 9 agents."""
MAX_NODES = 5_000_000

# libyaml's parser when present (20x faster on large fleets); the pure-Python one otherwise. Same documents.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

LinePath = tuple[str | int, ...]


class YamlError(Exception):
    def __init__(self, message: str, line: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.field = field


@dataclass(frozen=True)
class YamlDocument:
    data: dict[str, Any]
    lines: dict[LinePath, int]
    raw: bytes

    def line_of(self, path: LinePath) -> int | None:
        """The line of the deepest known prefix of `path` (a pydantic error location)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def dotted(path: LinePath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_yaml(raw: bytes, max_bytes: int = MAX_FILE_BYTES) -> YamlDocument:
    if len(raw) > max_bytes:
        raise YamlError(f"file is {len(raw)} bytes, over the limit of {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"file is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise YamlError(f"not valid YAML: {exc.problem or exc}", line=line) from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"not valid YAML: {exc}") from exc
    nodes = [n for n in nodes if n is not None]
    if not nodes:
        raise YamlError("file is empty; expected a mapping with apiVersion, kind and spec")
    if len(nodes) > 1:
        raise YamlError(
            f"file holds {len(nodes)} YAML documents; expected exactly one", line=nodes[1].start_mark.line + 1
        )
    root = nodes[0]
    if not isinstance(root, yaml.MappingNode):
        raise YamlError(f"top level is a {_kind(root)}; expected a mapping with apiVersion, kind and spec", line=1)
    lines: dict[LinePath, int] = {}
    _walk(root, (), lines, seen=set())
    data = _Loader(text).construct_document(root)
    return YamlDocument(data=data, lines=lines, raw=raw)


def read_yaml(path: Path, max_bytes: int = MAX_FILE_BYTES) -> YamlDocument:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise YamlError(f"cannot read the file: {exc.strerror}") from exc
    if size > max_bytes:
        raise YamlError(f"file is {size} bytes, over the limit of {max_bytes} bytes")
    return parse_yaml(path.read_bytes(), max_bytes)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "list"
    if isinstance(node, yaml.ScalarNode):
        return f"scalar ({node.value!r})"[:60]
    return "mapping"


def _walk(node: yaml.Node, path: LinePath, lines: dict[LinePath, int], seen: set[int]) -> None:
    if id(node) in seen:
        raise YamlError(
            "YAML aliases (*name) are not allowed in manifests; write the value out",
            line=node.start_mark.line + 1,
            field=dotted(path) or None,
        )
    seen.add(id(node))
    if len(seen) > MAX_NODES:
        raise YamlError(f"file has more than {MAX_NODES} YAML nodes")
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        keys: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlError("YAML merge keys (<<) are not allowed in manifests", line=key_node.start_mark.line + 1)
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError("mapping keys must be plain strings", line=key_node.start_mark.line + 1)
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in keys:
                raise YamlError(
                    f"key {key!r} appears twice in the same mapping (lines {keys[key]} and {line})",
                    line=line,
                    field=dotted((*path, key)),
                )
            keys[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, seen)
