"""The user's own key (foundry/files/user_key.py): made once, owner-only, outside the repository, and never used
when others could read or replace it."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from foundry.files.user_key import KEY_BYTES, KEY_FILE_VARIABLE, KeyUnavailableError, key_file, load_or_create_key
from tests.conftest import REPO_ROOT


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_key_is_made_on_first_use_owner_only_and_then_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "agentfoundry" / "foundry.key"
    first = load_or_create_key(path)
    assert len(first) == KEY_BYTES
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert load_or_create_key(path) == first
    assert load_or_create_key(tmp_path / "elsewhere" / "foundry.key") != first


def test_the_key_is_made_whole_even_when_many_ask_at_once(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "foundry.key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_or_create_key(path), range(16)))
    assert len(keys) == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["foundry.key"], "no temporary file is left behind"


def test_it_lives_in_the_users_state_directory_outside_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path.home()
    assert key_file({}) == home / ".local" / "state" / "agentfoundry" / "foundry.key"
    assert key_file({"XDG_STATE_HOME": "/var/lib/me"}) == Path("/var/lib/me/agentfoundry/foundry.key")
    assert key_file({"XDG_STATE_HOME": "relative"}).is_relative_to(home), "a relative XDG path is ignored"
    assert key_file({KEY_FILE_VARIABLE: "/run/secrets/af.key", "XDG_STATE_HOME": "/x"}) == Path("/run/secrets/af.key")
    assert not key_file({}).is_relative_to(REPO_ROOT)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_key_others_may_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys" / "foundry.key"
    load_or_create_key(path)
    path.chmod(mode)
    with pytest.raises(KeyUnavailableError, match=r"foundry\.key: the key file must be the user's own .* mode 0600"):
        load_or_create_key(path)


def test_a_key_in_a_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "foundry.key"
    load_or_create_key(path)
    path.parent.chmod(0o777)
    try:
        with pytest.raises(KeyUnavailableError, match="writable by nobody else"):
            load_or_create_key(path)
    finally:
        path.parent.chmod(0o700)


def test_a_symlinked_or_short_key_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "keys" / "real.key"
    load_or_create_key(real)
    link = real.with_name("foundry.key")
    link.symlink_to(real)
    with pytest.raises(KeyUnavailableError, match=r"foundry\.key"):
        load_or_create_key(link)
    short = real.with_name("short.key")
    fd = os.open(short, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"tiny")
    os.close(fd)
    with pytest.raises(KeyUnavailableError, match="a key is 32 bytes, this file has 4"):
        load_or_create_key(short)


def test_a_key_that_cannot_be_made_says_where(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(KeyUnavailableError, match=r"file/foundry\.key"):
        load_or_create_key(blocked / "foundry.key")
