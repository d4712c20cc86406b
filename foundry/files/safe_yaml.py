"""Strict YAML reading for files people write: one mapping per file, no duplicate keys, no aliases.

Aliases are refused outright: they are the mechanism of "billion laughs" bombs and nothing in a manifest needs them.
Nesting is bounded (MAX_DEPTH) before anything is composed: libyaml's composer recurses in C, so a few kilobytes of
`[[[[...` would otherwise overflow the stack and kill the process (the Foundry MCP server with its deploy locks).
The checks run inside construction (one pass over the document); the line of a field is looked up in the parsed
node tree only when an error needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from instance_contract.yaml_nesting import FAST_SAFE_LOADER, MAX_DEPTH, NestingTooDeepError, check_nesting

MAX_FILE_BYTES = 1_048_576
"""Specs, templates and settings: a person writes these by hand."""
MAX_MANIFEST_BYTES = 64 * 1_048_576
"""Environment manifests list every binding of a fleet: about 3.6 MB per 1,000 instances of 9 agents."""
MAX_NODES = 5_000_000

_MERGE_TAG = "tag:yaml.org,2002:merge"

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
    root: yaml.Node | None
    """The parsed node tree, kept to find the line of a field; None once the document is known valid."""
    raw: bytes

    def line_of(self, path: LinePath) -> int | None:
        """The line of the deepest prefix of `path` (a pydantic error location) found in the document."""
        node = self.root
        line = None if node is None else node.start_mark.line + 1
        for part in path:
            if isinstance(node, yaml.MappingNode):
                pair = next((p for p in node.value if isinstance(p[0], yaml.ScalarNode) and p[0].value == part), None)
                if pair is None:
                    break
                line, node = pair[0].start_mark.line + 1, pair[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line


def dotted(path: LinePath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _StrictLoader(FAST_SAFE_LOADER):  # type: ignore[misc, valid-type]
    """Refuses aliases, merge keys, non-string keys and duplicate keys while it constructs the document."""

    nodes_seen = 0

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node in self.constructed_objects or node in self.recursive_objects:
            raise YamlError(
                "YAML aliases (*name) are not allowed in manifests; write the value out", line=node.start_mark.line + 1
            )
        self.nodes_seen += 1
        if self.nodes_seen > MAX_NODES:
            raise YamlError(f"file has more than {MAX_NODES} YAML nodes")
        return super().construct_object(node, deep)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        keys: dict[str, int] = {}
        for key_node, _ in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                raise YamlError("YAML merge keys (<<) are not allowed in manifests", line=line)
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError("mapping keys must be plain strings", line=line)
            first = keys.get(key_node.value)
            if first is not None:
                raise YamlError(
                    f"key {key_node.value!r} appears twice in the same mapping (lines {first} and {line})", line=line
                )
            keys[key_node.value] = line


def _field_of(root: yaml.Node, line: int | None) -> str | None:
    """The dotted path of the first key on `line`, to name the field of a structural error."""
    if line is None:
        return None
    stack: list[tuple[yaml.Node, LinePath]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value in reversed(node.value):
                key_path = (*path, str(key_node.value))
                if key_node.start_mark.line + 1 == line:
                    return dotted(key_path)
                stack.append((value, key_path))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, index)) for index, item in reversed(list(enumerate(node.value))))
    return None


def _check_depth(text: str) -> None:
    try:
        check_nesting(text, MAX_DEPTH)
    except NestingTooDeepError as exc:
        raise YamlError(
            f"mappings and lists are nested more than {MAX_DEPTH} levels deep; manifests need far fewer", line=exc.line
        ) from None


def parse_yaml(raw: bytes, max_bytes: int = MAX_FILE_BYTES) -> YamlDocument:
    if len(raw) > max_bytes:
        raise YamlError(f"file is {len(raw)} bytes, over the limit of {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"file is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        _check_depth(text)
        nodes = [n for n in yaml.compose_all(text, Loader=FAST_SAFE_LOADER) if n is not None]
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise YamlError(f"not valid YAML: {exc.problem or exc}", line=line) from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"not valid YAML: {exc}") from exc
    if not nodes:
        raise YamlError("file is empty; expected a mapping with apiVersion, kind and spec")
    if len(nodes) > 1:
        raise YamlError(
            f"file holds {len(nodes)} YAML documents; expected exactly one", line=nodes[1].start_mark.line + 1
        )
    root = nodes[0]
    if not isinstance(root, yaml.MappingNode):
        kind = "list" if isinstance(root, yaml.SequenceNode) else f"scalar ({root.value!r})"[:60]
        raise YamlError(f"top level is a {kind}; expected a mapping with apiVersion, kind and spec", line=1)
    try:
        data = _StrictLoader(text).construct_document(root)
    except YamlError as exc:
        exc.field = exc.field or _field_of(root, exc.line)
        raise
    except yaml.YAMLError as exc:
        raise YamlError(f"not valid YAML: {exc}") from exc
    return YamlDocument(data=data, root=root, raw=raw)


def read_yaml(path: Path, max_bytes: int = MAX_FILE_BYTES) -> YamlDocument:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise YamlError(f"cannot read the file: {exc.strerror}") from exc
    if size > max_bytes:
        raise YamlError(f"file is {size} bytes, over the limit of {max_bytes} bytes")
    return parse_yaml(path.read_bytes(), max_bytes)
