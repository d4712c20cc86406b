"""The state store on the environment's DynamoDB table (constructs/af_deploy_state.py): shared by every deployer of
the environment (CI runners, the Foundry MCP server, an engineer's clone), so a rollout halted on one machine
resumes on another, and a lock taken anywhere is seen everywhere.

Every change is one conditional UpdateItem: a lease is taken only when the item has none or it has expired, and
renewed, released or written through only with its token. Reads are strongly consistent. Data is stored
zlib-compressed by the caller's choice of bytes (the item limit is 400 KB).
"""

from __future__ import annotations

import secrets
import time
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from foundry.state.store import LeaseHeldError, LeaseInfo, StateStoreError

PARTITION_KEY = "pk"
"""The table's only key (a string): `deploy-lock/<env>/<org>/<domain>/<instance>`, `rollout/<env>`."""
CONDITION_FAILED = "ConditionalCheckFailedException"
ACQUIRE_ATTEMPTS = 3


def _number(value: float) -> Decimal:
    return Decimal(f"{value:.3f}")


class DynamoDbStateStore:
    def __init__(self, client: Any, table: str) -> None:
        self._db, self.table = client, table
        self.location = f"DynamoDB table {table}"

    def _update(self, **request: Any) -> bool:
        """One conditional UpdateItem; False when its condition failed."""
        try:
            self._db.update_item(TableName=self.table, **request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == CONDITION_FAILED:
                return False
            raise StateStoreError(f"the deploy state {self.location} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StateStoreError(f"the deploy state {self.location} cannot be reached: {exc}") from exc
        return True

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            item: dict[str, Any] | None = self._db.get_item(
                TableName=self.table, Key={PARTITION_KEY: {"S": key}}, ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise StateStoreError(f"the deploy state {self.location} cannot be read: {exc}") from exc
        return item

    def acquire(self, key: str, holder: str, description: str, ttl_seconds: float) -> str:
        for _ in range(ACQUIRE_ATTEMPTS):
            token, now = secrets.token_hex(16), time.time()
            taken = self._update(
                Key={PARTITION_KEY: {"S": key}},
                UpdateExpression="SET lease_holder = :h, lease_token = :t, lease_description = :d, expires_at = :e",
                ConditionExpression="attribute_not_exists(lease_token) OR expires_at < :now",
                ExpressionAttributeValues={
                    ":h": {"S": holder},
                    ":t": {"S": token},
                    ":d": {"S": description},
                    ":e": {"N": str(_number(now + ttl_seconds))},
                    ":now": {"N": str(_number(now))},
                },
            )
            if taken:
                return token
            info = self.holder(key)
            if info is not None:
                raise LeaseHeldError(info)
            # released or expired between the two calls: try again
        raise StateStoreError(f"the lease {key} in {self.location} changed hands {ACQUIRE_ATTEMPTS} times; retry")

    def renew(self, key: str, token: str, ttl_seconds: float, description: str | None = None) -> bool:
        now = time.time()
        values: dict[str, Any] = {
            ":t": {"S": token},
            ":e": {"N": str(_number(now + ttl_seconds))},
            ":now": {"N": str(_number(now))},
        }
        update = "SET expires_at = :e"
        if description is not None:
            update += ", lease_description = :d"
            values[":d"] = {"S": description}
        return self._update(
            Key={PARTITION_KEY: {"S": key}},
            UpdateExpression=update,
            ConditionExpression="lease_token = :t AND expires_at >= :now",
            ExpressionAttributeValues=values,
        )

    def release(self, key: str, token: str) -> None:
        self._update(
            Key={PARTITION_KEY: {"S": key}},
            UpdateExpression="REMOVE lease_holder, lease_token, lease_description, expires_at",
            ConditionExpression="lease_token = :t",
            ExpressionAttributeValues={":t": {"S": token}},
        )
        try:  # an item with no data left is only a released lock: gone
            self._db.delete_item(
                TableName=self.table,
                Key={PARTITION_KEY: {"S": key}},
                ConditionExpression="attribute_not_exists(lease_token) AND attribute_not_exists(#data)",
                ExpressionAttributeNames={"#data": "data"},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != CONDITION_FAILED:
                raise StateStoreError(f"the deploy state {self.location} failed: {exc}") from exc

    def holder(self, key: str) -> LeaseInfo | None:
        item = self._get(key)
        if item is None or "lease_token" not in item:
            return None
        expires_at = float(item["expires_at"]["N"])
        if expires_at < time.time():
            return None
        return LeaseInfo(
            key=key,
            holder=item["lease_holder"]["S"],
            description=item.get("lease_description", {}).get("S", ""),
            expires_at=expires_at,
        )

    def write(self, key: str, token: str, data: bytes) -> bool:
        return self._update(
            Key={PARTITION_KEY: {"S": key}},
            UpdateExpression="SET #data = :data",
            ConditionExpression="lease_token = :t AND expires_at >= :now",
            ExpressionAttributeNames={"#data": "data"},
            ExpressionAttributeValues={
                ":data": {"B": data},
                ":t": {"S": token},
                ":now": {"N": str(_number(time.time()))},
            },
        )

    def read(self, key: str) -> bytes | None:
        item = self._get(key)
        if item is None or "data" not in item:
            return None
        return bytes(item["data"]["B"])

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        request: dict[str, Any] = {
            "TableName": self.table,
            "ProjectionExpression": PARTITION_KEY,
            "FilterExpression": f"begins_with({PARTITION_KEY}, :p) AND attribute_exists(#data)",
            "ExpressionAttributeNames": {"#data": "data"},
            "ExpressionAttributeValues": {":p": {"S": prefix}},
            "ConsistentRead": True,
        }
        try:
            while True:
                page = self._db.scan(**request)
                found += [item[PARTITION_KEY]["S"] for item in page.get("Items", [])]
                if "LastEvaluatedKey" not in page:
                    return sorted(found)
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise StateStoreError(f"the deploy state {self.location} cannot be read: {exc}") from exc
