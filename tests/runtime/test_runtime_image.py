"""The runtime image, built from runtime/Dockerfile with podman and run as ECS runs it.

The container gets a bundle mounted read-only, the runtime contract's environment (the variables the task
definition sets), a read-only root filesystem with a tmpfs /tmp, and its port published on 127.0.0.1. A module,
file or dependency missing from the image fails these tests. Needs podman, runc and mmdebstrap (.ci/run installs
them); without them the tests are skipped on a laptop and fail in CI (CI=true). The first run builds the stand-in
base image (about 35 s) and the image (about 35 s); later runs reuse both while nothing changed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace

import httpx
import pytest
from mcp import Client
from packaging.utils import canonicalize_name

from runtime.image.podman import INSTALL_HINT, ImageError, build_image, missing_tools, podman
from tests.runtime.runtime_harness import BuiltBundle
from tests.test_requirements_locks import IMAGE_LOCK, read_lock

pytestmark = pytest.mark.slow

CONTAINER_PORT = 8080
BUNDLE_DIR = "/bundles"
SECRET_VALUE = "image-test-secret-value"
START_TIMEOUT_SECONDS = 60.0
SEEDED_BY_THE_BASE = {"pip", "setuptools", "wheel"}
"""Installed in the base image's Python (the real one's and the stand-in's venv), not by our lock."""


@pytest.fixture(scope="module")
def image() -> str:
    missing = missing_tools()
    if missing:
        message = (
            f"{', '.join(missing)} not found: this test builds and runs the runtime image with podman; {INSTALL_HINT}"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the image test: {message} (.ci/run installs them)")
        pytest.skip(message)
    try:
        return build_image(log=lambda _: None)
    except ImageError as exc:
        pytest.fail(f"the runtime image did not build: {exc}")


@pytest.fixture(scope="module")
def bundle(example_bundles: list[BuiltBundle], tmp_path_factory: pytest.TempPathFactory) -> BuiltBundle:
    """The dev instance's bundle in a folder the container's user (uid 10001) may read, as a mounted volume is."""
    built = next(b for b in example_bundles if b.instance.key.selector == "default-org/default-domain/dev")
    folder = tmp_path_factory.mktemp("image-bundle")
    folder.chmod(0o755)
    path = folder / built.path.name
    shutil.copyfile(built.path, path)
    path.chmod(0o644)
    return replace(built, path=path)


@dataclass(frozen=True)
class Container:
    name: str
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inspect(self, template: str) -> str:
        return podman("container", "inspect", "--format", template, self.name).strip()

    def logs(self) -> str:
        try:
            return podman("logs", self.name, with_stderr=True)
        except ImageError as exc:
            return str(exc)


def contract_environment(bundle: BuiltBundle) -> dict[str, str]:
    """What the ECS task definition sets (constructs/af_agent_runtime.py), with the bundle at its mount. Caller
    authentication is off (AUTH_MODE=none): a container cannot reach an issuer on this host's loopback, and the
    verifier is tested against real processes in test_runtime_auth.py; its modules and PyJWT are in the image (the
    image's lock and the import test hold that)."""
    return {
        **bundle.identity_env(),
        "BUNDLE_URI": f"{BUNDLE_DIR}/{bundle.path.name}",
        "PORT": str(CONTAINER_PORT),
        "ALLOWED_HOSTS": bundle.instance.manifest.spec.hostname,
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "SECRET_TICKET_API_TOKEN": SECRET_VALUE,
        "AUTH_MODE": "none",
    }


@contextmanager
def running(image: str, bundle: BuiltBundle) -> Iterator[Container]:
    """`podman run` as ECS would: read-only root filesystem, tmpfs /tmp, bundle mounted, contract environment."""
    name = f"af-runtime-test-{uuid.uuid4().hex[:12]}"
    env = [arg for key, value in sorted(contract_environment(bundle).items()) for arg in ("--env", f"{key}={value}")]
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--read-only",
        "--tmpfs",
        "/tmp:rw,size=16m,mode=1777",
        "--publish",
        f"127.0.0.1::{CONTAINER_PORT}",
        "--volume",
        f"{bundle.path.parent}:{BUNDLE_DIR}:ro",
        *env,
        image,
    )
    try:
        published = podman("port", name, f"{CONTAINER_PORT}/tcp").strip().splitlines()[0]
        container = Container(name, int(published.rsplit(":", 1)[1]))
        wait_for_healthz(container)
        yield container
    finally:
        with suppress(ImageError):
            podman("rm", "--force", "--time", "0", name)


def wait_for_healthz(container: Container) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if container.inspect("{{.State.Running}}") != "true":
            pytest.fail(f"the container exited before answering /healthz; its output:\n{container.logs()}")
        try:
            if httpx.get(f"{container.base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"/healthz did not answer 200 within {START_TIMEOUT_SECONDS:.0f} s; output:\n{container.logs()}")


async def test_the_image_serves_an_instance_becomes_healthy_and_stops_cleanly(image: str, bundle: BuiltBundle) -> None:
    with running(image, bundle) as container:
        # /readyz is for the load balancer and says nothing internal; which bundle runs is `describe`'s to say
        assert httpx.get(f"{container.base}/readyz", timeout=5).json() == {"ready": True, "draining": False}
        # the Dockerfile's HEALTHCHECK (python -m runtime healthcheck), run by podman inside the container
        podman("healthcheck", "run", container.name)
        assert container.inspect("{{.State.Health.Status}}") == "healthy"

        async with Client(f"{container.base}/mcp") as client:
            result = await client.call_tool("invoke", {"message": "plan the Q3 roadmap", "thread_id": "image"})
            described = await client.call_tool("describe", {})
        assert result.structured_content is not None, result
        assert result.structured_content["ok"] is True, result.structured_content
        assert result.structured_content["workers"] == ["pm-agent"]
        assert described.structured_content is not None
        assert described.structured_content["bundle_hash"] == bundle.content_hash
        assert SECRET_VALUE not in json.dumps(described.structured_content)

        podman("stop", "--time", "30", container.name, timeout=60)
        assert container.inspect("{{.State.ExitCode}}") == "0", container.logs()
        assert SECRET_VALUE not in container.logs()


def test_the_container_runs_as_non_root_and_writes_only_to_its_tmpfs(image: str, bundle: BuiltBundle) -> None:
    probe = (
        "import os, sys\n"
        "print(os.getuid())\n"
        "open('/tmp/probe', 'w').write('ok')\n"
        "for path in ('/app/probe', '/probe', '/app/runtime/probe.py'):\n"
        "    try:\n"
        "        open(path, 'w')\n"
        "    except OSError as exc:\n"
        "        print(path, exc.strerror)\n"
        "    else:\n"
        "        sys.exit(path + ' is writable')\n"
    )
    with running(image, bundle) as container:
        output = podman("exec", container.name, "python", "-c", probe).splitlines()
        server_user = podman("top", container.name, "user").splitlines()[1:]
    assert output[0] == "10001"
    assert output[1:] == [
        "/app/probe Read-only file system",
        "/probe Read-only file system",
        "/app/runtime/probe.py Read-only file system",
    ]
    assert [user.strip() for user in server_user] == ["runtime"]  # the server process: the image's uid 10001


def test_the_image_holds_exactly_the_locked_distributions(image: str) -> None:
    """pip installed the image lock and nothing else: no CDK, no Node, no test tools, nothing unlocked."""
    probe = (
        "import json; from importlib import metadata; from packaging.markers import default_environment;"
        "print(json.dumps({'env': default_environment(),"
        " 'dists': {d.metadata['Name']: d.version for d in metadata.distributions()}}))"
    )
    report = json.loads(podman("run", "--rm", "--read-only", "--entrypoint", "python", image, "-c", probe, timeout=120))
    installed = {canonicalize_name(name): version for name, version in report["dists"].items()}
    for seeded in SEEDED_BY_THE_BASE:
        installed.pop(canonicalize_name(seeded), None)
    locked = {
        name: pin.version
        for name, pins in read_lock(IMAGE_LOCK).items()
        for pin in pins
        if pin.marker is None or pin.marker.evaluate(report["env"])
    }
    assert installed == locked
