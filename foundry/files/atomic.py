"""Writing generated files so that a reader (cdk, a deploy, a second process) never sees half of one."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def write_atomically(files: dict[Path, bytes]) -> None:
    """Writes each file through a temporary sibling and a rename; a failed write leaves no temporary behind."""
    for path, data in sorted(files.items()):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            Path(tmp).chmod(0o644)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def write_content_addressed(data: bytes, directory: Path, suffix: str) -> Path:
    """`<sha256 of data><suffix>` in `directory`, written once (atomically): same bytes, same file, never changed."""
    path = directory / f"{hashlib.sha256(data).hexdigest()}{suffix}"
    if not path.exists():
        write_atomically({path: data})
    return path
