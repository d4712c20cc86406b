"""`python -m foundry` as a person or a pipeline runs it: a real subprocess, exit codes and output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.foundry.manifest_edits import edit, entries


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "foundry", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_validate_lists_every_example_instance() -> None:
    result = run("validate", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)["instances"]
    assert len(listed) == 7
    assert {"environment": "prod", "instance": "globex/support/tenant-123"}.items() <= listed[4].items()


def test_invalid_input_exits_1_lists_every_problem_and_shows_no_traceback(agents_copy: Path) -> None:
    edit(agents_copy / "manifests/manifest.dev.yaml", lambda d: entries(d)[0].update(system_tier="0", colour="x"))
    result = run("validate", "--agents-dir", agents_copy)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "spec.entries[0].system_tier" in result.stderr and "spec.entries[0].colour" in result.stderr
    assert "manifest.dev.yaml" in result.stderr


def test_json_errors_are_machine_readable(agents_copy: Path) -> None:
    edit(agents_copy / "manifests/manifest.dev.yaml", lambda d: entries(d)[0].update(version="x"))
    result = run("validate", "--agents-dir", agents_copy, "--json")
    assert result.returncode == 1
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["field"] == "spec.entries[0].version" and problem["entry"] == "entry 0 (io-agent)"
    assert problem["file"].endswith("manifests/manifest.dev.yaml") and isinstance(problem["line"], int)


def test_invalid_input_writes_nothing(agents_copy: Path, tmp_path: Path) -> None:
    edit(agents_copy / "specs/workers/pm-agent.yaml", lambda d: d["spec"].update(role="planner"))
    out = tmp_path / "out"
    for command in ("render", "bundle"):
        result = run(command, "--agents-dir", agents_copy, "--out", out)
        assert result.returncode == 1, result.stderr
    assert not out.exists()


def test_usage_errors_exit_2() -> None:
    assert run("validate", "--no-such-flag").returncode == 2
    assert run("frobnicate").returncode == 2
    bad_selector = run("validate", "--instance", "acme/retail/$(reboot)")
    assert bad_selector.returncode == 2 and "DNS-safe" in bad_selector.stderr
    unknown = run("validate", "--instance", "acme/retail/nowhere")
    assert unknown.returncode == 2 and "unknown instance 'acme/retail/nowhere'" in unknown.stderr


def test_unknown_environment_is_invalid_input() -> None:
    result = run("validate", "--environment", "qa")
    assert result.returncode == 1 and "unknown environment 'qa'" in result.stderr


def test_render_writes_one_manifest_per_selected_instance(tmp_path: Path) -> None:
    result = run("render", "--out", tmp_path, "--environment", "prod", "--json")
    assert result.returncode == 0, result.stderr
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.yaml"))
    assert written == [
        "prod/manifest.acme.retail.instance-us-east-1.yaml",
        "prod/manifest.globex.billing.instance-eu-west-1.yaml",
        "prod/manifest.globex.support.instance-tenant-123.yaml",
    ]


def test_bundle_twice_gives_identical_archives(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert run("bundle", "--out", first).returncode == 0
    assert run("bundle", "--out", second, "--json").returncode == 0
    archives = sorted(p.relative_to(first) for p in first.rglob("*.tar.gz"))
    assert len(archives) == 7
    for relative in archives:
        assert (first / relative).read_bytes() == (second / relative).read_bytes()


def test_selected_bundle_only(tmp_path: Path) -> None:
    result = run("bundle", "--out", tmp_path, "--instance", "globex/support/tenant-123", "--json")
    (row,) = json.loads(result.stdout)["bundles"]
    assert row["environment"] == "prod" and row["content_hash"].startswith("sha256:")
    assert [p.name for p in tmp_path.rglob("*.tar.gz")] == ["globex.support.instance-tenant-123.bundle.tar.gz"]
