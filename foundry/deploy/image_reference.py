"""Container image references, parsed the way registries read them, and the per-environment allow-list.

An image runs with the instance's task role and secrets, so which repositories an environment may run is decided
by `agents/platform.yaml` (`allowed_image_repositories`), never by a tool caller. Matching is on parsed parts:
the registry host is compared whole (`<account>.dkr.ecr.<region>.amazonaws.com.evil.com` is another host, not a
longer spelling of the allowed one), the repository by whole path components.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*"
_REGISTRY = re.compile(rf"^(?P<host>{_HOST})(?::(?P<port>\d{{1,5}}))?$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
IMAGE_FORM = "REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST"
PATTERN_FORM = "REGISTRY/REPOSITORY, REGISTRY/NAMESPACE/* or REGISTRY/* (no tag, no digest)"


@dataclass(frozen=True)
class ImageReference:
    registry: str
    """Host and optional port, lowercased; `docker.io` when the reference names none."""
    repository: str
    tag: str | None
    digest: str | None

    @property
    def repository_uri(self) -> str:
        return f"{self.registry}/{self.repository}"


def _split_registry(text: str) -> tuple[str | None, str]:
    """Docker's rule: the first path component is a registry when it has a '.' or a ':' or is 'localhost'."""
    first, slash, rest = text.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, text


def _check_registry(registry: str, what: str) -> str:
    match = _REGISTRY.match(registry)
    if not match or (match["port"] is not None and not 1 <= int(match["port"]) <= 65535):
        raise ValueError(f"{what}: {registry!r} is not a registry host (HOST or HOST:PORT)")
    return registry.lower()


def _check_repository(path: str, what: str) -> str:
    components = path.split("/")
    bad = [c for c in components if not _PATH_COMPONENT.match(c)]
    if bad:
        raise ValueError(
            f"{what}: repository path component {bad[0]!r} is not allowed "
            "(lowercase letters and digits, separated by '.', '_', '__' or '-')"
        )
    return path


def parse_image_reference(text: str) -> ImageReference:
    """REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST] -> its parts; raises ValueError naming the part that is wrong."""
    rest, at, digest = text.partition("@")
    if at and not _DIGEST.match(digest):
        raise ValueError(f"digest {digest!r} is not sha256:<64 hex digits>")
    registry, path = _split_registry(rest)
    tag: str | None = None
    last_slash = path.rfind("/")
    name, colon, maybe_tag = path[last_slash + 1 :].partition(":")
    if colon:
        if not _TAG.match(maybe_tag):
            raise ValueError(f"tag {maybe_tag!r} is not a valid tag (letters, digits, '_', '.', '-'; at most 128)")
        tag = maybe_tag
        path = path[: last_slash + 1] + name
    if not path:
        raise ValueError("the reference names no repository")
    repository = _check_repository(path, "repository")
    if registry is None:
        host = DOCKER_HUB
        repository = repository if "/" in repository else f"library/{repository}"
    else:
        host = _check_registry(registry, "registry")
    return ImageReference(registry=host, repository=repository, tag=tag, digest=digest if at else None)


@dataclass(frozen=True)
class RepositoryPattern:
    """An allowed repository (`REGISTRY/REPO`), every repository under a namespace (`REGISTRY/NS/*`) or every
    repository of a registry (`REGISTRY/*`)."""

    registry: str
    repository: str
    """The exact repository, or the namespace whose repositories are allowed ('' for the whole registry)."""
    wildcard: bool

    def allows(self, image: ImageReference) -> bool:
        if image.registry != self.registry:
            return False
        if not self.wildcard:
            return image.repository == self.repository
        return not self.repository or image.repository.startswith(self.repository + "/")

    def __str__(self) -> str:
        if self.wildcard:
            return f"{self.registry}/{self.repository + '/' if self.repository else ''}*"
        return f"{self.registry}/{self.repository}"


def parse_repository_pattern(text: str) -> RepositoryPattern:
    """`allowed_image_repositories` entry -> RepositoryPattern; raises ValueError saying what is allowed."""
    registry, slash, path = text.partition("/")
    if not slash or not path:
        raise ValueError(f"{text!r} names no repository; expected {PATTERN_FORM}")
    if "@" in path or ":" in path:
        raise ValueError(f"{text!r} carries a tag or digest; expected {PATTERN_FORM}")
    host = _check_registry(registry, repr(text))
    wildcard = path == "*" or path.endswith("/*")
    repository = "" if path == "*" else path.removesuffix("/*")
    if repository:
        _check_repository(repository, repr(text))
    return RepositoryPattern(registry=host, repository=repository, wildcard=wildcard)


def ecr_registry(account: str, region: str) -> str:
    """The environment's own private ECR registry host."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}"


def default_repository_patterns(account: str, region: str) -> list[str]:
    """What an environment allows when `allowed_image_repositories` is left out: its own ECR registry."""
    return [f"{ecr_registry(account, region)}/*"]


def first_allowing(patterns: Sequence[RepositoryPattern], image: ImageReference) -> RepositoryPattern | None:
    return next((p for p in patterns if p.allows(image)), None)
