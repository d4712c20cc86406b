"""Running the CDK app itself as a synth process, with the environment the CDK CLI gives it, but no CLI beside it.

`cdk synth` (aws-cdk 2.1148, `lib/cxapp/exec.js`) runs cdk.json's `app` command with `CDK_OUTDIR`,
`CDK_CONTEXT_JSON` (the context of the command line, cdk.json, cdk.context.json and ~/.cdk.json, in that order of
precedence, plus the `aws:cdk:*` keys its settings imply), `CDK_CLI_VERSION`, `CDK_CLI_ASM_VERSION`,
`CDK_ERROR_FILE`, `CDK_PERF_COUNTERS_FILE` and `PYTHONIOENCODING=utf-8`, then reads the manifest the app wrote. Its
own node process (about 250 MiB) waits beside the app the whole time. A shard of `python -m foundry synth` runs
only the app, with the same environment, so a shard costs its app alone and writes the same cloud assembly.

What the CLI would add and this does not: the STS call for `CDK_DEFAULT_ACCOUNT` (this app names each stack's
account and region in the manifests; the variables pass through when set) and context lookups (an app that needs
one is refused by name, see `missing_context`: run `cdk synth` once to fill cdk.context.json).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_CONFIG = "cdk.json"
PROJECT_CONTEXT = "cdk.context.json"
USER_DEFAULTS = Path("~/.cdk.json")
ENV_SIZE_LIMIT_BYTES = 131072
"""The CLI's limit for the whole environment on Linux; past it, it moves context to a file (not needed here)."""
_SCHEMA_FILE = 'cloud-assembly-schema/schema/version.json"'
_REVISION = re.compile(r"\brevision:\s*(\d+)")
SCHEMA_SCAN_LINES = 10


class CdkAppError(Exception):
    """cdk.json cannot be run as an app here, or the app asked for context it was not given; the message says why."""


@dataclass(frozen=True)
class AppSynthCommand:
    """One run of the app: its argv and the variables to set over the runner's environment."""

    argv: tuple[str, ...]
    env: Mapping[str, str]


@dataclass(frozen=True)
class CdkApp:
    """The app cdk.json names at `repo_root`, and the CLI's settings that shape what it synthesizes."""

    repo_root: Path
    command: tuple[str, ...]
    context: Mapping[str, Any]
    """cdk.json's context over cdk.context.json's over ~/.cdk.json's (the CLI's precedence, command line aside)."""
    settings: Mapping[str, Any]
    cli_version: str | None
    schema_version: str | None

    @classmethod
    def of_repo(cls, repo_root: Path, *, user_defaults: Path = USER_DEFAULTS) -> CdkApp:
        project = _read_json(repo_root / PROJECT_CONFIG, required=True)
        user = _read_json(user_defaults.expanduser(), required=False)
        app = project.get("app")
        if not isinstance(app, str) or not app.strip():
            raise CdkAppError(f"{repo_root / PROJECT_CONFIG}: 'app' must be the command that runs the CDK app")
        context: dict[str, Any] = {}
        saved = _read_json(repo_root / PROJECT_CONTEXT, required=False)
        for layer in (user.get("context"), saved, project.get("context")):  # lowest precedence first
            context |= dict(layer or {})
        cli = repo_root / "node_modules" / "aws-cdk"
        return cls(
            repo_root=repo_root,
            command=tuple(shlex.split(app)),
            context=context,
            settings={**user, **project},
            cli_version=_cli_version(cli),
            schema_version=_schema_version(cli),
        )

    def cli_context(self, context: Mapping[str, str]) -> dict[str, Any]:
        """The context `cdk synth --context k=v ...` hands the app: the files', the command line's over them, and
        the keys the CLI derives from its settings (`contextFromSettings`) over both."""
        merged: dict[str, Any] = {**self.context, **context}
        if self.settings.get("pathMetadata", True):
            merged["aws:cdk:enable-path-metadata"] = True
        if self.settings.get("assetMetadata", True):
            merged["aws:cdk:enable-asset-metadata"] = True
        if self.settings.get("versionReporting", True):
            merged["aws:cdk:version-reporting"] = True
        else:
            merged["aws:cdk:disable-version-reporting"] = True
        if not self.settings.get("staging", True):
            merged["aws:cdk:disable-asset-staging"] = True
        merged["aws:cdk:bundling-stacks"] = self.settings.get("bundlingStacks", ["**"])
        merged["@aws-cdk/core:failSynthOnValidationErrors"] = False
        return merged

    def synth_command(self, *, context: Mapping[str, str], output: Path) -> AppSynthCommand:
        """The app's own process writing its cloud assembly to `output` (created here, as the CLI does), with
        `context` as `--context` would give it. CdkAppError when the context does not fit the environment."""
        output.mkdir(parents=True, exist_ok=True)
        env = {
            "PYTHONIOENCODING": "utf-8",
            "CDK_OUTDIR": str(output),
            "CDK_ERROR_FILE": str(output / "error.txt"),
            "CDK_PERF_COUNTERS_FILE": str(output / "performance-counters.json"),
        }
        if self.cli_version:
            env["CDK_CLI_VERSION"] = self.cli_version
        if self.schema_version:
            env["CDK_CLI_ASM_VERSION"] = self.schema_version
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region and "CDK_DEFAULT_REGION" not in os.environ:
            env["CDK_DEFAULT_REGION"] = region
        context_json = json.dumps(self.cli_context(context), separators=(",", ":"))
        used = sum(len(k) + len(v) for k, v in {**os.environ, **env}.items())
        if used + len(context_json) > ENV_SIZE_LIMIT_BYTES:
            raise CdkAppError(
                f"the CDK context ({len(context_json)} bytes) does not fit the app's environment: shorten the "
                f"context in {self.repo_root / PROJECT_CONFIG} or {self.repo_root / PROJECT_CONTEXT}"
            )
        env["CDK_CONTEXT_JSON"] = context_json
        return AppSynthCommand(argv=self.command, env=env)


def missing_context(assembly: Path) -> list[str]:
    """The context keys the app wrote into `assembly`'s manifest as missing (lookups the CLI would make, then run
    the app again); an assembly that lacks them cannot be deployed as it is. Raises OSError/ValueError like
    reading the manifest does."""
    manifest = json.loads((assembly / "manifest.json").read_text(encoding="utf-8"))
    return sorted(str(entry.get("key")) for entry in manifest.get("missing") or [])


def _read_json(path: Path, *, required: bool) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise CdkAppError(f"{path} does not exist: the CDK app is named there")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CdkAppError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CdkAppError(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


def _cli_version(cli: Path) -> str | None:
    try:
        version = json.loads((cli / "package.json").read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None
    return str(version) if version else None


def _schema_version(cli: Path) -> str | None:
    """The cloud-assembly schema the CLI reads (`Manifest.version()`: `<revision>.0.0`), from the schema's
    version.json inlined in its bundle; None when not found (aws-cdk-lib 2.275 does not read the variable)."""
    try:
        with (cli / "lib" / "index.js").open(encoding="utf-8") as handle:
            lines = iter(handle)
            for line in lines:
                if _SCHEMA_FILE in line:
                    for _, following in zip(range(SCHEMA_SCAN_LINES), lines, strict=False):
                        found = _REVISION.search(following)
                        if found:
                            return f"{found.group(1)}.0.0"
                    return None
    except OSError:
        return None
    return None
