"""Deterministic JSON for the documents this project generates (bundle documents, JSON schemas)."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(data: Any) -> bytes:
    """Sorted keys, fixed separators, trailing newline: stable across runs and machines."""
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
