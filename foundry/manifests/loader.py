"""Reads `agents/` from disk into typed documents, collecting every problem instead of stopping at the first."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from foundry.files.safe_yaml import (
    MAX_FILE_BYTES,
    MAX_MANIFEST_BYTES,
    LinePath,
    YamlDocument,
    YamlError,
    dotted,
    read_yaml,
)
from foundry.manifests.platform_settings import PlatformSettings
from foundry.manifests.problems import ManifestError, Problem, raise_if_any
from foundry.manifests.schema import RFC3339_PATTERN, AgentInstanceTemplate, AgentManifest, AgentSpec
from foundry.manifests.secret_scan import find_secret_values

MANIFESTS_DIR = "manifests"
TEMPLATE_FILE = "manifest.instance-template.yaml"
PLATFORM_FILE = "platform.yaml"
ENV_MANIFEST = re.compile(r"^manifest\.(?P<env>[^.]+)\.yaml$")

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Loaded(Generic[ModelT]):
    """A validated document with the file it came from (as shown in errors) and its raw bytes."""

    file: str
    model: ModelT
    doc: YamlDocument

    def problem_at(self, loc: LinePath, message: str, *, entry: str | None = None) -> Problem:
        """A problem with the field at `loc` of this document: its file, dotted field name and line (and the entry
        it belongs to, when the file is a list of them)."""
        return Problem(file=self.file, entry=entry, field=dotted(loc), line=self.doc.line_of(loc), message=message)


@dataclass(frozen=True)
class AgentsTree:
    """Everything under `agents/` that resolution needs, already validated file by file."""

    root: Path
    environments: dict[str, Loaded[AgentManifest]]
    template: Loaded[AgentInstanceTemplate]
    platform: Loaded[PlatformSettings]
    specs: dict[str, Loaded[AgentSpec]]
    """Keyed by `yaml_path` as written in the entries (relative to `agents/`)."""

    def display(self, relative: str) -> str:
        return str(self.root / relative)


def describe_entry(doc_data: Any, loc: LinePath) -> str | None:
    """'entry 3 (io-agent)' for a location inside spec.entries, so a long manifest error points at one entry."""
    if len(loc) >= 3 and loc[0] == "spec" and loc[1] == "entries" and isinstance(loc[2], int):
        index = loc[2]
        try:
            agent_id = doc_data["spec"]["entries"][index].get("agent_id")
        except (KeyError, IndexError, TypeError, AttributeError):
            agent_id = None
        return f"entry {index} ({agent_id})" if isinstance(agent_id, str) else f"entry {index}"
    return None


def validate_document(file: str, doc: YamlDocument, model: type[ModelT]) -> ModelT | list[Problem]:
    """Validates one parsed file against its model; on failure, one Problem per field, with line numbers."""
    head = _check_head(file, doc, model)
    if head:
        return head
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc: LinePath = tuple(error["loc"])
            # pydantic appends the tagged-union/validator step names to loc; keep only real data keys.
            loc = tuple(p for p in loc if isinstance(p, int) or not str(p).startswith(("function-", "literal[")))
            problems.append(
                Problem(
                    file=file,
                    entry=describe_entry(doc.data, loc),
                    field=dotted(loc) or None,
                    line=doc.line_of(loc),
                    message=_explain(error),
                )
            )
        return problems


def _check_head(file: str, doc: YamlDocument, model: type[BaseModel]) -> list[Problem]:
    expected_kind = model.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]
    problems = []
    api_version = doc.data.get("apiVersion")
    if api_version != "agent-foundry/v1":
        problems.append(
            Problem(
                file=file,
                field="apiVersion",
                line=doc.line_of(("apiVersion",)),
                message=f"found {api_version!r}; expected 'agent-foundry/v1'",
            )
        )
    kind = doc.data.get("kind")
    if kind != expected_kind:
        problems.append(
            Problem(
                file=file,
                field="kind",
                line=doc.line_of(("kind",)),
                message=f"found {kind!r}; this file must be kind {expected_kind!r}",
            )
        )
    return problems


def _explain(error: Any) -> str:
    kind = error["type"]
    value = error.get("input")
    shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    if len(shown) > 80:
        shown = shown[:77] + "..."
    if kind == "extra_forbidden":
        return "unknown key; remove it or check its spelling"
    if kind == "missing":
        return "required key is missing"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        hint = {
            r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$": "a DNS-safe id: lowercase letters, digits and '-', "
            "1 to 63 characters, not starting or ending with '-'",
        }.get(pattern)
        if pattern == RFC3339_PATTERN:
            hint = "an RFC 3339 timestamp with a time zone, such as '2026-11-20T00:00:00Z' (quote it in YAML)"
        if hint is None and "(0|[1-9]" in pattern:
            hint = "a semantic version such as '1.2.3' (quote it in YAML)"
        return f"found {shown}; expected {hint or f'text matching {pattern}'}"
    msg = str(error["msg"])
    msg = msg.removeprefix("Value error, ")
    return f"{msg} (found {shown})" if kind != "value_error" else msg


def load_document(
    root: Path, relative: str, model: type[ModelT], max_bytes: int = MAX_FILE_BYTES
) -> Loaded[ModelT] | list[Problem]:
    path = root / relative
    file = str(path)
    if not path.is_file():
        return [Problem(file=file, message="file not found")]
    try:
        doc = read_yaml(path, max_bytes)
    except YamlError as exc:
        return [Problem(file=file, message=exc.message, line=exc.line, field=exc.field)]
    result = validate_document(file, doc, model)
    if isinstance(result, list):
        return result
    leaks = [
        Problem(
            file=file,
            entry=describe_entry(doc.data, loc),
            field=dotted(loc) or None,
            line=doc.line_of(loc),
            message=f"looks like {label}; secrets are referenced by name (spec.secrets) and never written here",
        )
        for loc, label in find_secret_values(doc.data)
    ]
    if leaks:
        return leaks
    return Loaded(file=file, model=result, doc=doc)


def spec_path_problem(root: Path, yaml_path: str) -> str | None:
    """Why `yaml_path` may not be read: it must stay inside `agents/` and exist there."""
    candidate = Path(yaml_path)
    if candidate.is_absolute() or ".." in candidate.parts or "\\" in yaml_path:
        return f"{yaml_path!r} escapes the agents directory; give a path relative to {root}"
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root.resolve()):
        return f"{yaml_path!r} escapes the agents directory (through a link)"
    if not resolved.is_file():
        return f"{yaml_path!r} does not exist under {root}"
    if candidate.suffix not in (".yaml", ".yml"):
        return f"{yaml_path!r} is not a .yaml file"
    return None


def environment_files(root: Path) -> dict[str, str]:
    """environment name -> manifest path relative to root, from the file names `manifests/manifest.<env>.yaml`."""
    found: dict[str, str] = {}
    manifests = root / MANIFESTS_DIR
    if not manifests.is_dir():
        return found
    for path in sorted(manifests.iterdir()):
        match = ENV_MANIFEST.match(path.name)
        if match and path.name != TEMPLATE_FILE:
            found[match["env"]] = f"{MANIFESTS_DIR}/{path.name}"
    return found


def load_tree(root: Path) -> AgentsTree:
    """Loads and validates the template, the platform settings, the environment manifests and every spec
    they reference. Raises ManifestError listing every problem found."""
    tree, problems = read_tree(root)
    raise_if_any(problems)
    if tree is None:  # read_tree reports why whenever it cannot build a tree
        raise ManifestError([Problem(file=str(root), message="the agents directory could not be read")])
    return tree


def read_tree(root: Path) -> tuple[AgentsTree | None, list[Problem]]:
    """Like load_tree, but returns what could be read with the problems found, so resolution can still report
    what the valid files lack (e.g. system agents an instance does not bind) alongside the files that are broken.
    The tree is None only when the template or the platform settings are unusable."""
    problems: list[Problem] = []
    if not root.is_dir():
        raise_if_any([Problem(file=str(root), message="agents directory not found")])

    def take(result: Loaded[ModelT] | list[Problem]) -> Loaded[ModelT] | None:
        if isinstance(result, list):
            problems.extend(result)
            return None
        return result

    template = take(load_document(root, f"{MANIFESTS_DIR}/{TEMPLATE_FILE}", AgentInstanceTemplate))
    platform = take(load_document(root, PLATFORM_FILE, PlatformSettings))

    files = environment_files(root)
    if not files:
        problems.append(
            Problem(file=str(root / MANIFESTS_DIR), message="no environment manifests (manifest.<env>.yaml) found")
        )
    loaded_envs: dict[str, Loaded[AgentManifest]] = {}
    for env, relative in sorted(files.items()):
        manifest = take(load_document(root, relative, AgentManifest, MAX_MANIFEST_BYTES))
        if manifest is not None:
            loaded_envs[env] = manifest

    specs: dict[str, Loaded[AgentSpec]] = {}
    unreadable: set[str] = set()  # reported once: a thousand entries naming one broken spec read it once
    for manifest in loaded_envs.values():
        for index, entry in enumerate(manifest.model.spec.entries):
            if entry.yaml_path in specs or entry.yaml_path in unreadable:
                continue
            why = spec_path_problem(root, entry.yaml_path)
            if why is not None:
                problems.append(
                    manifest.problem_at(
                        ("spec", "entries", index, "yaml_path"), why, entry=f"entry {index} ({entry.agent_id})"
                    )
                )
                continue
            spec = take(load_document(root, entry.yaml_path, AgentSpec))
            if spec is None:
                unreadable.add(entry.yaml_path)
            else:
                specs[entry.yaml_path] = spec
    if template is None or platform is None:
        return None, problems
    return AgentsTree(root=root, environments=loaded_envs, template=template, platform=platform, specs=specs), problems
