"""Checks every argument a deploy is asked with (a Foundry MCP tool's, or a CLI option such as `rollout
--runtime-image`) before anything runs.

A tool argument ends up in a `cdk` argv list, a boto3 call or a file path. No shell is ever involved, but a value
that *looks* like shell syntax or a command-line flag is still refused: it is never a legitimate id, and refusing it
keeps the argv of every subprocess predictable. Each check raises ToolArgumentError with a message for the person
who sent the value: which argument, what was found, what is allowed.
"""

from __future__ import annotations

import re
from pathlib import Path

from foundry.deploy.image_reference import (
    IMAGE_FORM,
    default_repository_patterns,
    first_allowing,
    parse_image_reference,
    parse_repository_pattern,
)
from foundry.fleet.model import Fleet
from foundry.manifests.naming import parse_selector
from foundry.manifests.platform_settings import EnvironmentSettings
from foundry.manifests.resolve import ResolvedInstance
from foundry.manifests.schema import DNS_LABEL_PATTERN, InstanceKey

SHELL_METACHARACTERS = frozenset(";&|$`<>(){}[]*?!~'\"\\#%^")
_DNS_ID = re.compile(DNS_LABEL_PATTERN)
MAX_ARGUMENT_LENGTH = 512

MIN_TIMEOUT_SECONDS = 30
MAX_TIMEOUT_SECONDS = 4 * 3600


class ToolArgumentError(ValueError):
    """A tool argument (or CLI option) was refused; the message names the argument and what is allowed."""


SELECTOR_FORM = "ORG/DOMAIN/INSTANCE, each a DNS-safe id (lowercase letters, digits and '-')"
ID_FORM = "a DNS-safe id: lowercase letters, digits and '-', at most 63 characters"
DIRECTORY_FORM = "a directory inside the repository, relative to it or absolute"


def check_plain_value(argument: str, value: str, expected: str) -> str:
    """Refuses control characters, shell metacharacters and flag-like values; returns the value unchanged.
    `expected` says what the argument allows; every refusal ends with it."""
    allowed = f"; expected {expected}"
    if len(value) > MAX_ARGUMENT_LENGTH:
        raise ToolArgumentError(
            f"{argument}: {len(value)} characters is too long (at most {MAX_ARGUMENT_LENGTH}){allowed}"
        )
    if not value:
        raise ToolArgumentError(f"{argument}: must not be empty{allowed}")
    bad_control = sorted({c for c in value if ord(c) < 32 or ord(c) == 127})
    if bad_control:
        raise ToolArgumentError(f"{argument}: contains control characters {bad_control!r}; refused{allowed}")
    found = sorted({c for c in value if c in SHELL_METACHARACTERS})
    if found:
        raise ToolArgumentError(
            f"{argument}: {value!r} contains shell metacharacters {' '.join(found)}; refused (nothing was run)"
            + allowed
        )
    if value.startswith("-"):
        raise ToolArgumentError(
            f"{argument}: {value!r} looks like a command-line flag; refused (values may not start with '-')" + allowed
        )
    if any(c.isspace() for c in value):
        raise ToolArgumentError(f"{argument}: {value!r} contains whitespace; refused (nothing was run){allowed}")
    return value


def check_id(argument: str, value: str) -> str:
    """An organization, domain, environment, instance or agent id: a DNS label."""
    check_plain_value(argument, value, ID_FORM)
    if not _DNS_ID.match(value):
        raise ToolArgumentError(f"{argument}: {value!r} is not a valid id; expected {ID_FORM}")
    return value


def check_selector(argument: str, value: str) -> InstanceKey:
    """'ORG/DOMAIN/INSTANCE' as an InstanceKey, or a refusal saying the allowed form."""
    check_plain_value(argument, value, SELECTOR_FORM)
    try:
        return parse_selector(value)
    except ValueError as exc:
        raise ToolArgumentError(f"{argument}: {exc}") from exc


def check_instance_filter(value: str) -> str:
    """A filter that names an instance either by its id alone or as ORG/DOMAIN/INSTANCE."""
    expected = f"an instance id, or {SELECTOR_FORM}"
    check_plain_value("instance", value, expected)
    if "/" in value:
        check_selector("instance", value)
    elif not _DNS_ID.match(value):
        raise ToolArgumentError(f"instance: {value!r} is not a valid instance filter; expected {expected}")
    return value


def check_environment(fleet: Fleet, environment: str) -> str:
    check_id("environment", environment)
    known = sorted(fleet.tree.environments)
    if environment not in known:
        raise ToolArgumentError(f"environment: unknown environment {environment!r}; known: {', '.join(known)}")
    return environment


def find_instance(fleet: Fleet, environment: str, instance: str) -> ResolvedInstance:
    """The one resolved instance named by (environment, 'ORG/DOMAIN/INSTANCE'), or a refusal listing what exists."""
    check_environment(fleet, environment)
    key = check_selector("instance", instance)
    for resolved in fleet.instances:
        if resolved.environment == environment and resolved.key == key:
            return resolved
    known = [i.key.selector for i in fleet.instances if i.environment == environment]
    raise ToolArgumentError(
        f"instance: unknown instance {instance!r} in environment {environment!r}; known: {', '.join(known) or 'none'}"
    )


def check_image_uri(image_uri: str) -> str:
    """A container image reference with an explicit tag or digest, e.g.
    123456789012.dkr.ecr.us-east-1.amazonaws.com/agent-runtime:1.4.2"""
    check_plain_value("runtime_image", image_uri, IMAGE_FORM)
    try:
        image = parse_image_reference(image_uri)
    except ValueError as exc:
        raise ToolArgumentError(
            f"runtime_image: {image_uri!r} is not a container image reference ({exc}); expected {IMAGE_FORM}"
        ) from exc
    if image.tag is None and image.digest is None:
        raise ToolArgumentError(
            f"runtime_image: {image_uri!r} names no tag or digest; "
            f"give one explicitly (an implicit 'latest' is refused); expected {IMAGE_FORM}"
        )
    return image_uri


def allowed_repositories(settings: EnvironmentSettings) -> list[str]:
    """The environment's `allowed_image_repositories`, or by default its own ECR registry."""
    if settings.allowed_image_repositories is not None:
        return list(settings.allowed_image_repositories)
    return default_repository_patterns(settings.account, settings.region)


def check_runtime_image(image_uri: str, environment: str, settings: EnvironmentSettings) -> str:
    """A well-formed image reference from a repository the environment allows (agents/platform.yaml): the image
    runs with the tenant's task role and secrets, so an image from anywhere else is refused before anything runs."""
    check_image_uri(image_uri)
    image = parse_image_reference(image_uri)
    allowed = allowed_repositories(settings)
    patterns = [parse_repository_pattern(p) for p in allowed]
    if first_allowing(patterns, image) is None:
        source = (
            "its allowed_image_repositories"
            if settings.allowed_image_repositories is not None
            else "by default its own ECR registry; set allowed_image_repositories to allow others"
        )
        raise ToolArgumentError(
            f"runtime_image: {image_uri!r} (registry {image.registry}, repository {image.repository}) is not allowed "
            f"in environment {environment!r}; refused (nothing was run); agents/platform.yaml allows ({source}): "
            + ", ".join(allowed)
        )
    return image_uri


def check_repo_path(argument: str, value: str, repo_root: Path) -> Path:
    """A directory inside the repository (relative to it, or absolute); symlinks are resolved before the check."""
    check_plain_value(argument, value, DIRECTORY_FORM)
    root = repo_root.resolve()
    candidate = Path(value)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise ToolArgumentError(
            f"{argument}: {value!r} is outside the repository {root}; refused; expected {DIRECTORY_FORM}"
        )
    if not resolved.is_dir():
        raise ToolArgumentError(f"{argument}: {value!r} is not a directory; expected {DIRECTORY_FORM}")
    return resolved


def check_timeout(timeout_seconds: int) -> int:
    if not MIN_TIMEOUT_SECONDS <= timeout_seconds <= MAX_TIMEOUT_SECONDS:
        raise ToolArgumentError(
            f"timeout_seconds: {timeout_seconds} is out of range; "
            f"expected whole seconds from {MIN_TIMEOUT_SECONDS} to {MAX_TIMEOUT_SECONDS}"
        )
    return timeout_seconds
