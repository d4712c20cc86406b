"""Finds values that look like credentials. Secrets are referenced by name only; a value in a file is a leak."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from foundry.files.safe_yaml import LinePath

_SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    ("a private key", re.compile(r"-----BEGIN ([A-Z]+ )*PRIVATE KEY( BLOCK)?-----")),
    ("a GitHub token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})\b")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("an API key (sk-...)", re.compile(r"\bsk-(ant-|proj-)?[A-Za-z0-9_-]{20,}\b")),
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    (
        "an AWS secret access key",
        re.compile(r"(?i)aws.{0,20}(secret|private).{0,20}[:=]\s*['\"]?[A-Za-z0-9/+=]{40}\b"),
    ),
    (
        "a password or token assignment",
        re.compile(r"(?i)\b(password|passwd|secret|api[_-]?key|access[_-]?token)\b\s*[:=]\s*['\"]?[^\s'\"]{8,}"),
    ),
)

_SECRET_KEYS = re.compile(
    r"(?i)^(password|passwd|secret_value|api_key|apikey|access_key|secret_key|token|private_key)$"
)


_SHORTEST_MATCH = 15
"""No pattern above can match fewer characters ('secret:' and 8 more); most manifest values are shorter ids."""
_ANY_SECRET = re.compile(
    "|".join(
        f"(?i:{p.pattern.removeprefix('(?i)')})" if p.pattern.startswith("(?i)") else f"(?:{p.pattern})"
        for _, p in _SECRET_PATTERNS
    )
)
"""One search per string; the patterns are only tried one by one to name what was found."""


def find_secret_values(data: Any, path: LinePath = ()) -> Iterator[tuple[LinePath, str]]:
    """Yields (location, what it looks like) for every string value that looks like a credential."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str) and _SECRET_KEYS.match(key) and isinstance(value, str | int) and value != "":
                yield (*path, key), f"a value under the key {key!r}"
                continue
            yield from find_secret_values(value, (*path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from find_secret_values(item, (*path, index))
    elif isinstance(data, str) and len(data) >= _SHORTEST_MATCH and _ANY_SECRET.search(data):
        for label, pattern in _SECRET_PATTERNS:
            if pattern.search(data):
                yield path, label
                return
