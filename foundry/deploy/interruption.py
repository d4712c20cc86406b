"""After cdk is stopped (time limit or cancelled request): CloudFormation goes on working on the stack, so the
instance stays locked while a bounded background watch polls the stack until it settles.

The watch and its outcome are recorded in the instance's work folder (`interrupted-deploy.json`), where
`foundry.get_instance_status` reads how the last stopped deploy ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from botocore.exceptions import BotoCoreError, ClientError

from foundry.aws.cloudformation import in_progress
from foundry.deploy.locks import HeldLock

WATCH_POLL_SECONDS = 15.0
WATCH_LIMIT_SECONDS = 6 * 3600.0
"""How long a stopped deploy's stack is watched at most: CloudFormation gives up on an ECS service that never
stabilizes after about three hours, and its rollback takes as long again."""
UNREADABLE = (ClientError, BotoCoreError, TimeoutError)
"""What a status read raises when AWS cannot be read (no credentials, unreachable, slower than its time limit)."""
StatusReader = Callable[[], Awaitable[str | None]]
"""Reads the stack's status now (None: it does not exist); raises one of UNREADABLE when it cannot."""
StopKind = Literal["timed_out", "cancelled"]


@dataclass(frozen=True)
class Interruption:
    """A deploy whose cdk was stopped (time limit or cancelled request) and what CloudFormation did after it."""

    stack: str
    how: StopKind
    at: str
    status_when_stopped: str | None
    settled_status: str | None = None
    """The stack's status once CloudFormation stopped working on it (e.g. UPDATE_ROLLBACK_COMPLETE)."""
    settled_at: str | None = None
    watch_gave_up: bool = False
    """The watch reached its limit with the stack still in progress (or unreadable); the lock was released."""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_interruption(record: Path, interruption: Interruption) -> None:
    with contextlib.suppress(OSError):
        record.write_text(json.dumps(dataclasses.asdict(interruption), indent=2))


def read_interruption(record: Path) -> Interruption | None:
    try:
        return Interruption(**json.loads(record.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def watch_reason(interruption: Interruption, status: str | None) -> str:
    """What a request refused during the watch is told (and what the lock file says)."""
    what = "timed out" if interruption.how == "timed_out" else "was cancelled"
    return (
        f"its deploy {what} at {interruption.at} and cdk was stopped, but CloudFormation is still working on "
        f"stack {interruption.stack} ({status or 'not readable'} as of {now()}); no deploy may start on top of it"
    )


def stopped_reason(stack: str, status: str | None, watching: bool, watch_limit_seconds: float) -> str:
    """The failure reason of a deploy whose cdk was stopped by the time limit."""
    head = "`cdk deploy` did not finish within the time limit and was stopped"
    if watching:
        return (
            f"{head}; stopping cdk does not stop CloudFormation: stack {stack} is {status or 'not readable'}. "
            f"The instance stays locked until CloudFormation has finished (watched for up to "
            f"{watch_limit_seconds / 3600:g} h); foundry.get_instance_status shows how it ends"
        )
    return f"{head}; stack {stack} is {status or 'not deployed'} (CloudFormation is not working on it)"


async def watch_until_settled(
    held: HeldLock,
    interruption: Interruption,
    read_status: StatusReader,
    record: Path,
    *,
    poll_seconds: float,
    limit_seconds: float,
) -> Interruption:
    """Polls the stack until CloudFormation no longer works on it (at most `limit_seconds`), records how it ended,
    then releases the lock."""
    deadline = time.monotonic() + limit_seconds
    status, readable = interruption.status_when_stopped, interruption.status_when_stopped is not None
    try:
        while not readable or in_progress(status):
            if time.monotonic() >= deadline:
                final = dataclasses.replace(interruption, settled_status=status, watch_gave_up=True)
                break
            await asyncio.sleep(poll_seconds)
            try:
                status, readable = await read_status(), True
            except UNREADABLE:
                readable = False
            held.describe(watch_reason(interruption, status if readable else "unreadable"))
        else:
            final = dataclasses.replace(interruption, settled_status=status, settled_at=now())
        write_interruption(record, final)
        return final
    finally:
        held.release()
