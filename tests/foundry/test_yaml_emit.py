"""The generated-YAML writer: whatever it writes, a YAML parser reads back as the same data."""

from __future__ import annotations

import pytest
import yaml

from foundry.files.yaml_emit import dump_yaml

TRICKY = [
    "yes", "No", "on", "null", "~", "true", "1.0", "1.0.0", "0x1f", "1e3", "12:30", "2025-11-16", "-dash",
    "a: b", "# not a comment", "multi\nline", "tab\there", "quote \" inside", "ünïcode", "", " padded ", "@at",
    "*alias", "&anchor", "!tag", "[list]", "{map}", "%percent", "trailing:",
]  # fmt: skip


@pytest.mark.parametrize("text", TRICKY)
def test_every_string_reads_back_as_itself(text: str) -> None:
    assert yaml.safe_load(dump_yaml({"value": text, text or "k": [text, {"nested": text}]})) == {
        "value": text,
        text or "k": [text, {"nested": text}],
    }


def test_nesting_scalars_and_empty_containers_round_trip() -> None:
    document = {
        "a": {"b": [{"c": 1, "d": [True, None, 2.5]}, [], {}], "e": []},
        "f": [[1, 2], [{"g": "h"}]],
        "i": False,
    }
    assert yaml.safe_load(dump_yaml(document)) == document


def test_output_is_block_style_and_plain_where_safe() -> None:
    assert dump_yaml({"name": "acme-retail", "items": [{"id": "x", "count": 1}]}) == (
        "name: acme-retail\nitems:\n  - id: x\n    count: 1\n"
    )


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(TypeError, match="not a string"):
        dump_yaml({1: "x"})  # type: ignore[dict-item]
