"""The server's own bearer token never reaches the `cdk` child: read from what real child processes received."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from foundry.fleet.load import DEFAULT_AGENTS_DIR
from foundry.mcp.serve import make_config
from tests.mcp.foundry_mcp_process_helpers import http_server

ENV_TOKEN = "env-token-0123456789abcdef"
FILE_TOKEN = "file-token-fedcba9876543210"
DUMP_ENV = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"


def fake_cdk(tmp_path: Path) -> tuple[Path, Path]:
    """An executable standing in for the CDK CLI: it writes the environment it was started with, then fails."""
    dump = tmp_path / "cdk-env.json"
    cdk = tmp_path / "cdk"
    cdk.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"json.dump({{'argv': sys.argv, 'env': dict(os.environ)}}, open({str(dump)!r}, 'w'))\n"
        "print('fake cdk: environment written', flush=True)\nsys.exit(3)\n"
    )
    cdk.chmod(cdk.stat().st_mode | stat.S_IXUSR)
    return cdk, dump


def leaked(env: dict[str, str], *secrets: str) -> list[str]:
    return sorted(k for k, v in env.items() if k == "FOUNDRY_TOKEN" or any(s in v for s in secrets))


async def test_the_runner_that_starts_cdk_does_not_pass_foundry_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOUNDRY_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("AF_TEST_MARKER", "passed-through")
    config = make_config(DEFAULT_AGENTS_DIR, "direct", tmp_path)
    dump = tmp_path / "env.json"

    async def ignore(line: str) -> None:
        return None

    result = await config.deployer.runner.run(
        [sys.executable, "-c", DUMP_ENV, str(dump)], timeout_seconds=60, on_line=ignore
    )
    assert result.ok, result.lines
    child = json.loads(dump.read_text())
    assert child["AF_TEST_MARKER"] == "passed-through", "the rest of the environment is passed on"
    assert leaked(child, ENV_TOKEN) == []


@pytest.mark.slow
async def test_a_deploy_through_the_http_server_gives_cdk_no_token_from_the_environment_or_the_token_file(
    tmp_path: Path,
) -> None:
    cdk, dump = fake_cdk(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text(FILE_TOKEN + "\n")
    extra_env = {
        "DEPLOY_NOTE": f"copied:{FILE_TOKEN}",  # the file's token under another name
        "AF_TEST_MARKER": "passed-through",
    }
    args = ("--token-file", str(token_file), "--cdk-cli", str(cdk), "--work-dir", str(tmp_path / "work"))
    # FOUNDRY_TOKEN is set too: the token file wins for authentication, the variable is still a secret.
    with http_server(ENV_TOKEN, extra_args=args, extra_env=extra_env) as server:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {FILE_TOKEN}"}) as http,
            Client(streamable_http_client(server.url, http_client=http)) as client,
        ):
            result = await client.call_tool(
                "foundry.deploy_instance", {"environment": "dev", "instance": "acme/retail/dev", "dry_run": True}
            )
    out = result.structured_content
    assert out["outcome"] == "failed"
    assert "fake cdk: environment written" in out["log_tail"]
    child = json.loads(dump.read_text())
    assert child["argv"][1:3] == ["synth", "af-dev-acme-retail-dev"]
    assert child["env"]["AF_TEST_MARKER"] == "passed-through"
    assert leaked(child["env"], ENV_TOKEN, FILE_TOKEN) == []
