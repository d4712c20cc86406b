"""boto3's DynamoDB client from asyncio (one call, or every page of a scan or query), and what its refusals mean:
shared by the stores that keep their items in the instance's table (runtime.store.thread_leases, approval_store,
usage_ledger)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def in_executor(method: Callable[..., Any], **kwargs: Any) -> Any:
    """One blocking boto3 call in the default executor, so the event loop goes on meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(None, lambda: method(**kwargs))


async def all_items(method: Callable[..., Any], **arguments: Any) -> list[dict[str, Any]]:
    """Every item of a Scan or Query (`method`), page after page until DynamoDB has no LastEvaluatedKey."""
    items: list[dict[str, Any]] = []
    while True:
        page = await in_executor(method, **arguments)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        arguments = {**arguments, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def error_code(exc: Exception) -> str | None:
    """The service's error code of a botocore ClientError (None for anything else)."""
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def condition_failed(exc: Exception) -> bool:
    """The write's ConditionExpression refused it."""
    return error_code(exc) == "ConditionalCheckFailedException"


def transaction_conflict(exc: Exception) -> bool:
    """The item is being written by another task's transaction (a fenced write in flight)."""
    return error_code(exc) == "TransactionConflictException"
