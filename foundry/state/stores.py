"""Opens the state store of an environment from FOUNDRY_STATE_URL (foundry.state.locations), once per process."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from foundry.aws.clients import ClientFactory
from foundry.state.dynamodb_store import DynamoDbStateStore
from foundry.state.locations import (
    STATE_URL_ENV,
    StateLocation,
    parse_state_url,
    platform_table_parameter,
    repository_of,
)
from foundry.state.sqlite_store import SqliteStateStore
from foundry.state.store import StateStore, StateStoreError


@dataclass
class StateStores:
    location: StateLocation
    clients: ClientFactory | None = None
    _opened: dict[tuple[str, str], StateStore] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def configured(
        cls,
        agents_dir: Path,
        clients: ClientFactory | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        url: str | None = None,
    ) -> StateStores:
        """`url` (a command's --state-url), else FOUNDRY_STATE_URL, else the default file, for the agents tree at
        `agents_dir`. A URL that names no usable store raises StateUrlError naming where it came from."""
        source = "--state-url" if url is not None else STATE_URL_ENV
        if url is None:
            url = (os.environ if environ is None else environ).get(STATE_URL_ENV)
        return cls(parse_state_url(url, repository_of(agents_dir), source=source), clients)

    def open(self, environment: str, region: str | None) -> StateStore:
        """The environment's store. DynamoDB needs the region (and, for the platform's table, reads SSM)."""
        location = self.location
        if location.kind == "sqlite":
            assert location.path is not None
            key = ("sqlite", str(location.path))
        else:
            if region is None or self.clients is None:
                raise StateStoreError(
                    f"{STATE_URL_ENV} names a DynamoDB table: the deploy state of {environment} needs AWS clients "
                    "and the environment's region"
                )
            key = (region, location.table or f"platform:{environment}")
        with self._lock:
            store = self._opened.get(key)
            if store is None:
                store = self._open(environment, region)
                self._opened[key] = store
            return store

    def _open(self, environment: str, region: str | None) -> StateStore:
        location = self.location
        if location.kind == "sqlite":
            assert location.path is not None
            return SqliteStateStore(location.path)
        assert region is not None and self.clients is not None
        table = location.table or self._platform_table(environment, region)
        return DynamoDbStateStore(self.clients("dynamodb", region), table)

    def _platform_table(self, environment: str, region: str) -> str:
        assert self.clients is not None
        name = platform_table_parameter(environment)
        try:
            answer = self.clients("ssm", region).get_parameters(Names=[name])
        except (ClientError, BotoCoreError) as exc:
            raise StateStoreError(f"cannot read the SSM parameter {name} in {region}: {exc}") from exc
        found = answer.get("Parameters") or []
        if not found:
            raise StateStoreError(
                f"{STATE_URL_ENV}=dynamodb:// reads the deploy state table's name from the SSM parameter {name} "
                f"in {region}, which does not exist: deploy the platform stack af-{environment}-platform first "
                "(it creates the table), or name a table with dynamodb://TABLE"
            )
        return str(found[0]["Value"])
