"""One helper to acknowledge a cdk-nag finding: every acknowledgement must say why, so the reason is required."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations

from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    if len(reason.strip()) < 20:
        raise ValueError(f"the acknowledgement of {rule} needs a real reason, not {reason!r}")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))
