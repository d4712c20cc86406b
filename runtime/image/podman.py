"""Build the runtime image with Debian's podman, where there is no Docker engine and no Docker Hub.

`runtime/Dockerfile` stays what a user builds with Docker against the real `python:3.11-slim-bookworm`. Here that
base cannot be pulled (only package registries are reachable), so a stand-in is made from Debian packages with
mmdebstrap (Python 3.11 from bookworm, a venv on PATH, as the real image has `python` and `pip` on PATH), imported
and tagged with the Dockerfile's FROM name, and the build runs with `--pull=never`. The stand-in is rebuilt only
when its recipe changes (a label on the image records it). Used by `./dev image` and by the image test.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "runtime" / "Dockerfile"
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
IMAGE_TAG = "localhost/agent-foundry-runtime:dev"

REQUIRED_TOOLS = ("podman", "runc", "mmdebstrap")
INSTALL_HINT = "install them (Debian/Ubuntu: sudo apt-get install podman runc mmdebstrap), then run ./dev image"

BASE_SUITE = "bookworm"
BASE_PACKAGES = ("ca-certificates", "passwd", "python3", "python3-venv")
"""python3 is 3.11 in bookworm, like the real base; passwd gives the Dockerfile its `useradd`."""
BASE_VENV = "/opt/venv"
BASE_PATH = f"{BASE_VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RECIPE_LABEL = "org.agentfoundry.base-recipe"
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
"""This host's Debian mirror (it may be a snapshot or a proxy); used when it serves the base's suite."""
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
"""Debian's archive keys (package debian-archive-keyring), for hosts whose apt trusts other keys (Ubuntu)."""
BUILD_MOUNTS = (Path("/etc/ssl/certs"), Path("/etc/pip.conf"))
"""Package downloads may pass a proxy whose CA is in the host's store and whose settings are in pip.conf."""

BASE_TIMEOUT_SECONDS = 900
BUILD_TIMEOUT_SECONDS = 1200

Log = Callable[[str], None]


class ImageError(RuntimeError):
    """A podman or mmdebstrap step failed; the message names the command and ends with its output."""


def missing_tools() -> list[str]:
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


def podman_env() -> dict[str, str]:
    """Our containers.conf instead of the system's (runc, no default ulimits); see containers.conf."""
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def run(argv: Sequence[str], *, timeout: float, stream: bool = False, with_stderr: bool = False) -> str:
    """Runs a command (argument list, repository root as working directory) and returns its stdout (and stderr,
    interleaved, with `with_stderr`); `stream` passes its output through to the terminal instead (for a person
    watching a build)."""
    try:
        result = subprocess.run(
            list(argv),
            cwd=REPO_ROOT,
            env=podman_env(),
            stdin=subprocess.DEVNULL,
            stdout=None if stream else subprocess.PIPE,
            stderr=None if stream else subprocess.STDOUT if with_stderr else subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise ImageError(f"{' '.join(argv[:3])} ...: no result within {timeout:.0f} s") from exc
    if result.returncode != 0:
        output = "" if stream else (result.stderr or result.stdout or "")[-4000:]
        raise ImageError(f"{' '.join(argv)}: exit code {result.returncode}\n{output}".rstrip())
    return result.stdout or ""


def podman(*args: str, timeout: float = 120, stream: bool = False, with_stderr: bool = False) -> str:
    return run(["podman", *args], timeout=timeout, stream=stream, with_stderr=with_stderr)


def base_image_name(dockerfile: Path = DOCKERFILE) -> str:
    """The Dockerfile's FROM image, fully qualified as podman stores it (python:3.11 -> docker.io/library/...)."""
    match = re.search(r"^FROM\s+(\S+)", dockerfile.read_text(), re.MULTILINE)
    if match is None:
        raise ImageError(f"{dockerfile}: no FROM line")
    name = match.group(1)
    first, _, rest = name.partition("/")
    if not rest:
        return f"docker.io/library/{name}"
    if "." in first or ":" in first or first == "localhost":
        return name
    return f"docker.io/{name}"


def host_sources(suite: str = BASE_SUITE) -> Path | None:
    if HOST_SOURCES.is_file() and re.search(rf"^Suites:.*\b{suite}\b", HOST_SOURCES.read_text(), re.MULTILINE):
        return HOST_SOURCES
    return None


def mmdebstrap_argv(target: Path, sources: Path | None) -> list[str]:
    return [
        "mmdebstrap",
        "--quiet",
        "--variant=essential",
        f"--include={','.join(BASE_PACKAGES)}",
        # snapshot mirrors serve Release files past their Valid-Until date
        '--aptopt=Acquire::Check-Valid-Until "false"',
        f'--customize-hook=chroot "$1" python3 -m venv {BASE_VENV}',
        '--customize-hook=rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*',
        # the host's sources name their keys (Signed-By); the default mirror needs Debian's keyring
        *([] if sources or not DEBIAN_KEYRING.exists() else [f"--keyring={DEBIAN_KEYRING}"]),
        BASE_SUITE,
        str(target),
        *([str(sources)] if sources else []),
    ]


def import_changes(recipe: str) -> list[str]:
    return [
        f"ENV PATH={BASE_PATH}",
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
        f"LABEL {RECIPE_LABEL}={recipe}",
    ]


def base_recipe(sources: Path | None) -> str:
    """A digest of everything that shapes the stand-in base; a different digest means rebuild it."""
    recipe = {
        "mmdebstrap": mmdebstrap_argv(Path("-"), sources),
        "sources": sources.read_text() if sources else None,
        "changes": import_changes(""),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:32]


def image_id(name: str) -> str | None:
    try:
        return podman("image", "inspect", "--format", "{{.Id}}", name).strip() or None
    except ImageError:
        return None  # no such image


def remove_replaced(old_id: str | None, name: str, log: Log) -> None:
    """Removes the image `name` pointed to before a rebuild, so that repeated builds do not pile up untagged
    images; one still in use (a running container) stays."""
    if old_id is None or old_id == image_id(name):
        return
    try:
        podman("rmi", old_id)
        log(f"removed the image {name} replaced: {old_id[:12]}")
    except ImageError:
        pass


def current_recipe(name: str) -> str | None:
    try:
        labels = podman("image", "inspect", "--format", "{{json .Labels}}", name).strip()
    except ImageError:
        return None  # no such image
    found = json.loads(labels) if labels and labels != "null" else {}
    value = found.get(RECIPE_LABEL) if isinstance(found, dict) else None
    return value if isinstance(value, str) else None


def ensure_base(log: Log = print, *, stream: bool = False) -> str:
    """The stand-in for the Dockerfile's FROM image; built (about 35 s) only when missing or its recipe changed."""
    name = base_image_name()
    sources = host_sources()
    recipe = base_recipe(sources)
    if current_recipe(name) == recipe:
        log(f"base image {name}: up to date (recipe {recipe})")
        return name
    log(f"base image {name}: building a stand-in from Debian {BASE_SUITE} with mmdebstrap (recipe {recipe})")
    started = time.monotonic()
    replaced = image_id(name)
    with tempfile.TemporaryDirectory(prefix="af-base-") as work:
        archive = Path(work) / "rootfs.tar"
        run(mmdebstrap_argv(archive, sources), timeout=BASE_TIMEOUT_SECONDS, stream=stream)
        changes = [arg for change in import_changes(recipe) for arg in ("--change", change)]
        podman("import", "--quiet", *changes, str(archive), name, timeout=BASE_TIMEOUT_SECONDS)
    log(f"base image {name}: built in {time.monotonic() - started:.0f} s")
    remove_replaced(replaced, name, log)
    return name


def build_image(tag: str = IMAGE_TAG, log: Log = print, *, stream: bool = False) -> str:
    """Builds runtime/Dockerfile (context: the repository root, filtered by .dockerignore) and returns the image id.
    Docker format, not OCI: OCI images have no HEALTHCHECK, and the Dockerfile's must survive."""
    ensure_base(log, stream=stream)
    mounts = [arg for path in BUILD_MOUNTS if path.exists() for arg in ("--volume", f"{path}:{path}:ro")]
    started = time.monotonic()
    replaced = image_id(tag)
    with tempfile.TemporaryDirectory(prefix="af-image-") as work:
        iidfile = Path(work) / "iid"
        podman(
            "build",
            "--pull=never",
            "--format=docker",
            *mounts,
            "--file",
            str(DOCKERFILE),
            "--tag",
            tag,
            "--iidfile",
            str(iidfile),
            str(REPO_ROOT),
            timeout=BUILD_TIMEOUT_SECONDS,
            stream=stream,
        )
        built = iidfile.read_text().strip()
    log(f"runtime image {tag}: {built} built in {time.monotonic() - started:.0f} s")
    remove_replaced(replaced, tag, log)
    return built
