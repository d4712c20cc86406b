"""External MCP server URLs are `https` to a public DNS name: `validate` refuses IP literals, `localhost`, link-local,
private and loopback targets (naming file and field), unless the environment explicitly allows private targets in
agents/platform.yaml, a setting that reaches the instance manifest and the bundle (the runtime enforces it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from foundry.bundles.archive import build_bundle
from foundry.fleet.load import load_fleet
from foundry.manifests.problems import ManifestError
from instance_contract.bundle_format import INSTANCE_FILE, MCP_FILE
from tests.conftest import AGENTS_DIR, REPO_ROOT
from tests.foundry.manifest_edits import allow_private_targets, edit

TEMPLATE = "manifests/manifest.instance-template.yaml"


def _declare(root: Path, url: str) -> None:
    server = {"name": "ticketing", "url": url, "bearer_secret": "ticket-api-token"}
    edit(root / TEMPLATE, lambda d: d["spec"]["mcp"].update(servers=[server]))
    edit(root / "specs/workers/ticket-agent.yaml", lambda d: d["spec"]["tools"].append("ticketing.create_ticket"))


def _problems(root: Path) -> list[str]:
    try:
        load_fleet(root, cache_dir=None)
    except ManifestError as exc:
        return [str(p) for p in exc.problems]
    return []


REFUSED = [
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://[::ffff:169.254.169.254]/mcp", "link-local"),
    ("https://10.0.0.5/mcp", "private"),
    ("https://192.168.1.20/mcp", "private"),
    ("https://127.0.0.1/mcp", "loopback"),
    ("http://127.0.0.1:9/mcp", "loopback"),
    ("https://[::1]/mcp", "loopback"),
    ("https://localhost/mcp", "loopback"),
    ("https://LocalHost./mcp", "loopback"),
    ("https://api.localhost/mcp", "loopback"),
    ("https://8.8.8.8/mcp", "is an IP address"),
    ("https://2130706433/mcp", "not a public DNS name"),  # 127.0.0.1 written as one number
    ("https://127.1/mcp", "not a public DNS name"),
    ("https://tickets/mcp", "not a public DNS name"),
    ("https://tickets.internal/mcp", "not a public DNS name"),
    ("https://printer.local/mcp", "not a public DNS name"),
]


@pytest.mark.parametrize(("url", "says"), REFUSED, ids=[u for u, _ in REFUSED])
def test_validate_refuses_a_target_that_is_not_a_public_name(agents_copy: Path, url: str, says: str) -> None:
    _declare(agents_copy, url)
    problems = _problems(agents_copy)
    assert problems, url
    assert all(TEMPLATE in p and "spec.mcp.servers[0].url" in p and says in p for p in problems), problems
    assert all("https to a public DNS name" in p for p in problems)


def test_the_cli_names_file_field_and_environment(agents_copy: Path) -> None:
    _declare(agents_copy, "https://169.254.169.254/latest/meta-data")
    result = subprocess.run(
        [sys.executable, "-m", "foundry", "validate", "--agents-dir", str(agents_copy)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    line = next(line for line in result.stderr.splitlines() if "169.254.169.254" in line)
    assert TEMPLATE in line and "spec.mcp.servers[0].url" in line and "link-local" in line
    assert "environment 'dev'" in result.stderr and "environment 'prod'" in result.stderr


def test_a_public_https_name_is_accepted_everywhere(agents_copy: Path) -> None:
    _declare(agents_copy, "https://tickets.example.com/mcp")
    assert _problems(agents_copy) == []


def test_an_environment_that_allows_private_targets_accepts_loopback_only_there(agents_copy: Path) -> None:
    _declare(agents_copy, "http://127.0.0.1:9/mcp")
    allow_private_targets(agents_copy, "dev")
    problems = _problems(agents_copy)
    assert problems and all("environment 'dev'" not in p for p in problems)
    assert any("environment 'prod'" in p for p in problems)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://169.254.169.254/mcp", "link-local"),
        ("http://127.0.0.1:8080/mcp", "this instance's own port"),
        ("http://localhost:8080/mcp", "this instance's own port"),
        ("http://10.1.2.3/mcp", "plain http"),
        ("https://8.8.8.8/mcp", "is an IP address"),
    ],
)
def test_even_allowed_private_targets_exclude_link_local_the_own_port_and_http_off_loopback(
    agents_copy: Path, url: str, says: str
) -> None:
    _declare(agents_copy, url)
    allow_private_targets(agents_copy)
    problems = _problems(agents_copy)
    assert problems and all(says in p for p in problems), problems


def test_the_setting_reaches_the_instance_manifest_and_bundle_only_where_it_is_set(agents_copy: Path) -> None:
    _declare(agents_copy, "https://tickets.example.com/mcp")
    allow_private_targets(agents_copy, "dev")
    fleet = load_fleet(agents_copy, cache_dir=None)
    for instance in fleet.instances:
        files = build_bundle(instance).files
        manifest = yaml.safe_load(files[INSTANCE_FILE])
        if instance.environment == "dev":
            assert manifest["spec"]["egress"] == {"allow_private_targets": True}
        else:
            assert "egress" not in manifest["spec"]  # unchanged bytes for environments without the setting
        assert "egress" not in json.loads(files[MCP_FILE])["provider"]


def test_the_example_environments_do_not_allow_private_targets() -> None:
    environments = yaml.safe_load((AGENTS_DIR / "platform.yaml").read_text())["spec"]["environments"]
    assert all("egress" not in settings for settings in environments.values())
    assert all(not i.manifest.spec.egress.allow_private_targets for i in load_fleet(AGENTS_DIR).instances)
