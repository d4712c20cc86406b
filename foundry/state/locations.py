"""FOUNDRY_STATE_URL: where deploy state lives, in the runtime's STATE_URL style. Parsing is pure.

(unset)                    build/foundry-state.db in the agents tree's git repository (one machine)
sqlite:///relative/path.db a SQLite file, relative to the agents tree's repository (never the working directory)
sqlite:////abs/dir/x.db    an absolute path
dynamodb://                the environment's table in its platform stack, found through the platform's SSM
                           parameter (shared by every deployer: CI, the Foundry MCP server, engineers)
dynamodb://TABLE           a named table
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

STATE_URL_ENV = "FOUNDRY_STATE_URL"
ALLOWED_FORMS = (
    "sqlite:///PATH (relative), sqlite:////ABSOLUTE/PATH, dynamodb:// (the platform's table) or dynamodb://TABLE"
)
DEFAULT_STATE_FILE = Path("build") / "foundry-state.db"
TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")


class StateUrlError(ValueError):
    """A FOUNDRY_STATE_URL that names no usable store; the message names the setting and the allowed forms."""


@dataclass(frozen=True)
class StateLocation:
    kind: Literal["sqlite", "dynamodb"]
    path: Path | None = None
    """sqlite: the database file, absolute."""
    table: str | None = None
    """dynamodb: the table; None means the environment's platform table (read from SSM)."""


def platform_table_parameter(environment: str) -> str:
    """The SSM parameter holding the table's name (constructs/af_platform_contract.py's deploy_state_parameter;
    kept here so the Foundry does not import the CDK side, and tested to agree)."""
    return f"/agentfoundry/{environment}/platform/deploy-state-table"


def repository_of(agents_dir: Path) -> Path:
    """The git repository that holds the agents tree (its top folder), else the folder above the tree."""
    start = agents_dir.resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start.parent


def parse_state_url(url: str | None, repository: Path, *, source: str = STATE_URL_ENV) -> StateLocation:
    """`repository` is where the default file and relative paths live; `source` names the setting in errors."""
    if url is None or not url.strip():
        return StateLocation(kind="sqlite", path=repository / DEFAULT_STATE_FILE)
    text = url.strip()
    if text.startswith("sqlite:///"):
        raw = text[len("sqlite:///") :]
        if not raw or raw.endswith("/") or "?" in raw or "\x00" in raw:
            raise StateUrlError(f"{source}={url!r}: a sqlite URL needs a file path; allowed: {ALLOWED_FORMS}")
        path = Path(raw)
        return StateLocation(kind="sqlite", path=path if path.is_absolute() else repository / path)
    if text.startswith("dynamodb://"):
        table = text[len("dynamodb://") :]
        if not table:
            return StateLocation(kind="dynamodb")
        if not TABLE_NAME.fullmatch(table):
            raise StateUrlError(
                f"{source}={url!r}: {table!r} is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -); "
                f"allowed: {ALLOWED_FORMS}"
            )
        return StateLocation(kind="dynamodb", table=table)
    raise StateUrlError(f"{source}={url!r} is not a deploy state store; allowed: {ALLOWED_FORMS}")
