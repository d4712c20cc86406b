"""Where an instance keeps its thread state: the runtime setting that names the store, and the layout of the
instance's DynamoDB table. The CDK construct that creates the table (constructs/af_instance_state.py) and the
runtime that reads and writes it (runtime/store/thread_store.py) both import this module, so the two cannot drift.

The table layout is the one langgraph-checkpoint-aws's DynamoDBSaver writes (string keys `PK` and `SK`, TTL in
`ttl`); the runtime adds one small item per thread (`PK = AF_THREAD_<id>`) for its turn lease and idle time.
"""

from __future__ import annotations

STATE_URL_ENV = "STATE_URL"
"""The runtime's environment variable (`--state` on `serve` wins): sqlite:///PATH, dynamodb://TABLE or memory://."""

DYNAMODB_PARTITION_KEY = "PK"
DYNAMODB_SORT_KEY = "SK"
DYNAMODB_TTL_ATTRIBUTE = "ttl"
"""Epoch seconds after which DynamoDB may delete the item (an idle thread's checkpoints and its thread item)."""


def dynamodb_state_url(table_name: str) -> str:
    """The STATE_URL a task needs to use the instance's table."""
    return f"dynamodb://{table_name}"
