"""The instance's DynamoDB state table on a moto server, as its construct makes it (constructs/af_instance_state.py):
PK (HASH) and SK (RANGE), strings, on demand. One helper, so every runtime test's table has the same shape."""

from __future__ import annotations

from typing import Any

from instance_contract.thread_state import DYNAMODB_PARTITION_KEY, DYNAMODB_SORT_KEY


def create_state_table(client: Any, name: str) -> str:
    """Creates table `name` with `client` (a boto3 DynamoDB client) and returns its STATE_URL."""
    keys = [(DYNAMODB_PARTITION_KEY, "HASH"), (DYNAMODB_SORT_KEY, "RANGE")]
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": kind} for key, kind in keys],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"} for key, _ in keys],
        BillingMode="PAY_PER_REQUEST",
    )
    return f"dynamodb://{name}"
