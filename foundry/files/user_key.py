"""A secret key of the user's own, kept outside the repository, so that what the Foundry writes under `build/` can be
told apart from what someone else planted there.

A checkout's `build/` may come from a restored CI cache, a pull request's workspace or another user of a shared
machine; a file there is believed only when it carries a MAC made with this key. The key lives in
`$AGENTFOUNDRY_KEY_FILE` if set, else `$XDG_STATE_HOME/agentfoundry/foundry.key` (by default
`~/.local/state/agentfoundry/foundry.key`). It is created on first use: 32 random bytes, mode 0600, in a directory
created 0700. A key file that is not the user's own regular file, that others may read or write, or that sits in a
directory others may write is never used (`KeyUnavailableError` says which): callers then trust nothing they read.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

KEY_FILE_VARIABLE = "AGENTFOUNDRY_KEY_FILE"
KEY_BYTES = 32
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class KeyUnavailableError(Exception):
    """No trustworthy key: the message names the file and what is wrong with it."""


def key_file(environ: Mapping[str, str] | None = None) -> Path:
    """Where the key is: $AGENTFOUNDRY_KEY_FILE, else the user's state directory (XDG base directories)."""
    env = os.environ if environ is None else environ
    if env.get(KEY_FILE_VARIABLE, "").strip():
        return Path(env[KEY_FILE_VARIABLE]).expanduser()
    state_home = env.get("XDG_STATE_HOME", "").strip()
    base = Path(state_home) if state_home and Path(state_home).is_absolute() else Path.home() / ".local" / "state"
    return base / "agentfoundry" / "foundry.key"


def _owned_by_user(info: os.stat_result) -> bool:
    return not hasattr(os, "geteuid") or info.st_uid == os.geteuid()


def _check_directory(directory: Path) -> None:
    info = directory.stat()
    if not stat.S_ISDIR(info.st_mode) or not _owned_by_user(info) or info.st_mode & 0o022:
        raise KeyUnavailableError(
            f"{directory}: the key's directory must be the user's own and writable by nobody else "
            f"(mode {stat.filemode(info.st_mode)}); fix it with `chmod 700 {directory}` or set {KEY_FILE_VARIABLE}"
        )


def _read(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not _owned_by_user(info) or info.st_mode & 0o077:
            raise KeyUnavailableError(
                f"{path}: the key file must be the user's own regular file with mode 0600 "
                f"(it is {stat.filemode(info.st_mode)}); remove it to have a new one made, or set {KEY_FILE_VARIABLE}"
            )
        data = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != KEY_BYTES:
        raise KeyUnavailableError(f"{path}: a key is {KEY_BYTES} bytes, this file has {len(data)}; remove it")
    return data


def _create(path: Path) -> None:
    """Written whole under a temporary name, then linked into place: a second process sees no key or all of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
        os.close(fd)
        fd = -1
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(tmp, path)
    finally:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)


def load_or_create_key(path: Path | None = None) -> bytes:
    """The user's key, made on first use. Raises KeyUnavailableError when it cannot be made or must not be used."""
    path = key_file() if path is None else path
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.parent.chmod(0o700)
        _check_directory(path.parent)
        if not path.exists() and not path.is_symlink():
            _create(path)
        return _read(path)
    except OSError as exc:
        raise KeyUnavailableError(f"{path}: {exc.strerror or exc}") from exc
