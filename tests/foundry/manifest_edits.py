"""Small editors for a copied `agents/` tree, so each bad-manifest test states only the change it makes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]


def read(path: Path) -> Doc:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


class _NoAliases(yaml.SafeDumper):
    """Writes shared objects out in full: the loader refuses aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write(path: Path, data: Doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.dump(data, Dumper=_NoAliases, sort_keys=False))


def edit(path: Path, change: Callable[[Doc], object]) -> None:
    data = read(path)
    change(data)
    write(path, data)


def env_manifest(root: Path, env: str) -> Path:
    return root / "manifests" / f"manifest.{env}.yaml"


def entries(data: Doc) -> list[Doc]:
    found = data["spec"]["entries"]
    assert isinstance(found, list)
    return found


def instance_entries(data: Doc, org: str, domain: str, instance: str) -> list[Doc]:
    return [
        e for e in entries(data) if (e["organization_id"], e["domain_id"], e["instance_id"]) == (org, domain, instance)
    ]


def add_instance(root: Path, env: str, org: str, domain: str, instance: str, *, like: tuple[str, str, str]) -> None:
    """Copies the bindings of instance `like` in `env` to a new (org, domain, instance)."""

    def change(data: Doc) -> None:
        copies = []
        for entry in instance_entries(data, *like):
            copy = dict(entry)
            copy.update(organization_id=org, domain_id=domain, instance_id=instance)
            copies.append(copy)
        assert copies, f"no instance {like} in {env}"
        entries(data).extend(copies)

    edit(env_manifest(root, env), change)


def rename_ids(data: Doc, **ids: str) -> None:
    for entry in entries(data):
        entry.update(ids)


def allow_private_targets(root: Path, *environments: str) -> None:
    """The explicit opt-in of a local-development environment (every one when none is named): external MCP servers
    on 127.0.0.1, as the tests run them."""

    def change(data: Doc) -> None:
        for env, settings in data["spec"]["environments"].items():
            if not environments or env in environments:
                settings["egress"] = {"allow_private_targets": True}

    edit(root / "platform.yaml", change)
