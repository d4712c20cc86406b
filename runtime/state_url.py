"""STATE_URL: the one setting that says where an instance keeps its threads. Parsing is pure, so every accepted
and refused form is tested without a store.

    sqlite:///relative/path.db     a SQLite file relative to the working directory (the local default)
    sqlite:////abs/dir/state.db    an absolute path (four slashes, as SQLAlchemy writes it)
    dynamodb://TABLE               the instance's DynamoDB table (region and endpoint from the usual AWS settings)
    memory://                      in this process only; for tests (a restart or a second task forgets everything)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from instance_contract.thread_state import STATE_URL_ENV

ALLOWED_FORMS = "sqlite:///PATH (relative), sqlite:////ABSOLUTE/PATH, dynamodb://TABLE or memory://"
DEFAULT_STATE_DIR = PurePosixPath("build/state")
"""Where `serve` keeps threads when STATE_URL is unset: build/state/<environment>/<instance>.db under the working
directory (build/ is git-ignored)."""
TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
"""DynamoDB's rule for table names."""


class StateUrlError(ValueError):
    """A STATE_URL that names no usable store; the message names the setting and the allowed forms."""


@dataclass(frozen=True)
class StateLocation:
    kind: Literal["sqlite", "dynamodb", "memory"]
    url: str
    path: Path | None = None
    """sqlite: the database file (relative paths are relative to the working directory)."""
    table: str | None = None
    """dynamodb: the table name."""


def parse_state_url(url: str, *, source: str = STATE_URL_ENV) -> StateLocation:
    """`source` names where the value came from (STATE_URL or --state), for the error message."""
    text = url.strip()
    if text == "memory://":
        return StateLocation(kind="memory", url=text)
    if text.startswith("sqlite:///"):
        raw = text[len("sqlite:///") :]
        if not raw or raw.endswith("/") or raw == "/" or "?" in raw or "\x00" in raw:
            raise StateUrlError(f"{source}={url!r}: a sqlite URL needs a file path; allowed: {ALLOWED_FORMS}")
        return StateLocation(kind="sqlite", url=text, path=Path(raw))
    if text.startswith("dynamodb://"):
        table = text[len("dynamodb://") :]
        if not TABLE_NAME.fullmatch(table):
            raise StateUrlError(
                f"{source}={url!r}: {table!r} is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -); "
                f"allowed: {ALLOWED_FORMS}"
            )
        return StateLocation(kind="dynamodb", url=text, table=table)
    raise StateUrlError(f"{source}={url!r} is not a state store; allowed: {ALLOWED_FORMS}")


def default_state_url(environment: str, instance_name: str) -> str:
    """The local default for one instance: its own file, so two instances run side by side never share threads."""
    return f"sqlite:///{DEFAULT_STATE_DIR / environment / instance_name}.db"
