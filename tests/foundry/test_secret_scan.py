"""The secret scanner: what it flags, and that its fast paths skip nothing it would have flagged."""

from __future__ import annotations

import re

import pytest

from foundry.manifests import secret_scan
from foundry.manifests.secret_scan import find_secret_values

FLAGGED = {
    "AKIAIOSFODNN7EXAMPLE": "AWS access key",
    "-----BEGIN OPENSSH PRIVATE KEY-----": "private key",
    "ghp_" + "A1" * 18: "GitHub token",
    "xoxb-1234567890": "Slack token",
    "sk-ant-" + "x" * 24: "sk-",
    "AIza" + "b" * 35: "Google API key",
    "password: hunter2hunter2": "password or token",
    "Secret=abcdefgh": "password or token",
}


@pytest.mark.parametrize(("text", "label"), FLAGGED.items())
def test_credential_looking_values_are_flagged(text: str, label: str) -> None:
    ((path, found),) = find_secret_values({"spec": {"prompt": f"use {text} please"}})
    assert path == ("spec", "prompt") and label in found


@pytest.mark.parametrize("text", ["io-agent", "Use the secret handshake.", "token budget: 500", "sk-short"])
def test_ordinary_text_is_not_flagged(text: str) -> None:
    assert list(find_secret_values({"prompt": text})) == []


def test_a_value_under_a_secret_key_is_flagged_whatever_it_is() -> None:
    assert list(find_secret_values({"spec": [{"password": "x"}]})) == [
        (("spec", 0, "password"), "a value under the key 'password'")
    ]


def test_no_pattern_can_match_a_string_shorter_than_the_skip_threshold() -> None:
    for _, pattern in secret_scan._SECRET_PATTERNS:
        shortest = re._parser.parse(pattern.pattern).getwidth()[0]  # type: ignore[attr-defined]
        assert shortest >= secret_scan._SHORTEST_MATCH, pattern.pattern


def test_the_combined_pattern_finds_exactly_what_the_single_ones_find() -> None:
    samples = [*FLAGGED, "io-agent", "PASSWORD = abcdefghij", "aws_secret_access_key=" + "A" * 40]
    for text in samples:
        single = any(p.search(text) for _, p in secret_scan._SECRET_PATTERNS)
        assert bool(secret_scan._ANY_SECRET.search(text)) == single, text
