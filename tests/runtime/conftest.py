"""Fixtures of the runtime tests; the helpers live in runtime_harness.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oauth_resource.dev_issuer import RunningIssuer, serve_issuer
from tests.runtime.runtime_harness import AGENTS_DIR, BuiltBundle, RuntimeProcess, write_bundles


@pytest.fixture(scope="session")
def example_bundles(tmp_path_factory: pytest.TempPathFactory) -> list[BuiltBundle]:
    """One bundle per example instance in agents/ (7 across dev, staging and prod)."""
    return write_bundles(AGENTS_DIR, tmp_path_factory.mktemp("bundles"))


@pytest.fixture
def runtime_factory() -> Iterator[list[RuntimeProcess]]:
    """Collects started processes and makes sure none outlives its test."""
    started: list[RuntimeProcess] = []
    yield started
    for runtime in started:
        if runtime.process.poll() is None:
            runtime.process.kill()
            runtime.process.wait(timeout=10)


@pytest.fixture(scope="session")
def local_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningIssuer]:
    """A local token issuer on 127.0.0.1 (real ES256 key, JWKS and discovery over HTTP) for secured runtimes."""
    with serve_issuer(tmp_path_factory.mktemp("issuer")) as running:
        yield running
