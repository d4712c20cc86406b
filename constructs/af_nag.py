"""One helper to acknowledge a cdk-nag finding: every acknowledgement must say why, so the reason is required."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations

from constructs import IConstruct

NAG_PACK = "AwsSolutions"


def require_real_reason(rule: str, reason: str) -> None:
    """A placeholder reason is refused where it is written."""
    if len(reason.strip()) < 20:
        raise ValueError(f"the acknowledgement of {rule} needs a real reason, not {reason!r}")


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """`rule` as cdk-nag reports it ('AwsSolutions-IAM5[Resource::*]'); recorded under the pack's namespace so the
    validation report lists the finding as acknowledged, with this reason. Applies to `scope` and below."""
    require_real_reason(rule, reason)
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{NAG_PACK}::{rule}", reason=reason))
