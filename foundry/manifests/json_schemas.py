"""JSON Schema of every manifest kind, for editor validation (yaml-language-server `$schema` comments)."""

from __future__ import annotations

from pathlib import Path

from foundry.files.json_emit import canonical_json
from foundry.manifests.schema import KINDS


def schema_file(kind: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in kind).lstrip("-") + ".schema.json"


def schemas() -> dict[str, bytes]:
    """file name -> schema bytes, generated from the pydantic models."""
    out = {}
    for kind, model in sorted(KINDS.items()):
        document = model.model_json_schema(mode="validation")
        document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        document["$id"] = f"https://agentfoundry.dev/schemas/{schema_file(kind)}"
        out[schema_file(kind)] = canonical_json(document)
    return out


def write_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in schemas().items():
        path = out / name
        path.write_bytes(data)
        written.append(path)
    return written
