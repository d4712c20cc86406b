"""Problems found in the files people write, phrased for the person who must fix them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one file: where (file, line, entry, field), what was found and what is allowed."""

    file: str
    message: str
    field: str | None = None
    entry: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [where]
        if self.entry:
            parts.append(self.entry)
        if self.field:
            parts.append(f"field '{self.field}'")
        return ": ".join(parts) + f": {self.message}"

    def as_dict(self) -> dict[str, str | int | None]:
        return {
            "file": self.file,
            "line": self.line,
            "entry": self.entry,
            "field": self.field,
            "message": self.message,
        }


@dataclass
class ManifestError(Exception):
    """Raised with every problem found, not only the first, so one run shows all that must be fixed."""

    problems: Sequence[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the manifests:"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


def raise_if_any(problems: Iterable[Problem]) -> None:
    found = sorted(set(problems), key=lambda p: (p.file, p.line or 0, p.entry or "", p.field or "", p.message))
    if found:
        raise ManifestError(found)
