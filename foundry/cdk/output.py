"""Reading what the CDK CLI prints and writes: its stack-event lines (`--progress events`), the failure it
reports (the first failed resource in CloudFormation's words, else its own error summary), and its outputs file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from foundry.aws.cloudformation import CANCELLED_REASONS, Failure

# `af-dev-x | 3/12 | 10:04:05 AM | CREATE_FAILED | AWS::ECS::Service | Service/Service (ServiceABC) reason...`
# (`--method=direct` prints the count without `/total`.)
_EVENT = re.compile(
    r"^\s*(?P<stack>[A-Za-z][A-Za-z0-9-]*)\s*\|\s*(?P<done>\d+)\s*(?:/\s*(?P<total>\d+))?\s*\|[^|]*\|\s*"
    r"(?P<status>[A-Z_]+)\s*\|\s*(?P<type>[A-Za-z0-9:]+)\s*\|\s*(?P<rest>.*)$"
)
_FAILED_STATUSES = ("CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED", "IMPORT_FAILED")


@dataclass(frozen=True)
class StackEvent:
    """One line of `cdk deploy --progress events`: a resource's new status, and how far the stack has come."""

    stack: str
    done: int
    total: int | None
    status: str
    resource_type: str
    detail: str


def parse_event_line(line: str) -> StackEvent | None:
    match = _EVENT.match(line)
    if not match:
        return None
    return StackEvent(
        stack=match["stack"],
        done=int(match["done"]),
        total=int(match["total"]) if match["total"] else None,
        status=match["status"],
        resource_type=match["type"],
        detail=match["rest"].strip(),
    )


def failure_from_lines(lines: list[str] | tuple[str, ...]) -> Failure | None:
    """The first *_FAILED resource event cdk printed (skipping 'cancelled' follow-ups), else cdk's own error."""
    fallback: Failure | None = None
    for line in lines:
        event = parse_event_line(line)
        if event is None or event.status not in _FAILED_STATUSES:
            continue
        # detail: "<construct path> (<LogicalId>) <reason>" or "<LogicalId> <reason>"
        with_path = re.match(r"^(?:\S+\s+)?\((?P<logical>[A-Za-z0-9]+)\)\s*(?P<reason>.*)$", event.detail)
        if with_path:
            logical, reason = with_path["logical"], with_path["reason"]
        else:
            logical, _, reason = event.detail.partition(" ")
        failure = Failure(
            stack=event.stack,
            logical_id=logical or None,
            resource_type=event.resource_type,
            status=event.status,
            reason=reason.strip() or event.detail,
        )
        if not any(reason.strip().startswith(c) for c in CANCELLED_REASONS):
            return failure
        fallback = fallback or failure
    if fallback:
        return fallback
    return _cdk_error(lines)


def _cdk_error(lines: list[str] | tuple[str, ...]) -> Failure | None:
    """cdk's own summary: `❌  STACK failed to deploy` (or `❌ Deployment failed: ...`), the `‣ Code: message`
    lines that follow it, or a bare `Error:` line."""
    for index, line in enumerate(lines):
        marker = re.match(r"^\s*❌\s*(?:(?P<stack>[A-Za-z][A-Za-z0-9-]*) failed to deploy|(?P<text>.*))", line)
        if not marker:
            continue
        details = []
        for follow in lines[index + 1 :]:
            if not follow.strip().startswith("‣"):
                break
            details.append(follow.strip().lstrip("‣").strip())
        head = marker["text"].strip() if marker["text"] else ""
        reason = "; ".join([d for d in [head, *details] if d]) or line.strip()
        return Failure(stack=marker["stack"], logical_id=None, resource_type=None, status=None, reason=reason)
    errors = [line.strip() for line in lines if re.match(r"^\s*(Error|ValidationError)\b", line)]
    if errors:
        return Failure.of_command(" / ".join(errors[-3:]))
    return None


def read_outputs(outputs_file: Path) -> dict[str, dict[str, str]]:
    """Stack name -> output name -> value from `cdk deploy --outputs-file`; empty when missing or unreadable."""
    try:
        data = json.loads(outputs_file.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(stack): {str(k): str(v) for k, v in outs.items()} for stack, outs in data.items() if isinstance(outs, dict)
    }
