"""The one way the control plane gets an AWS client: a `ClientFactory`, boto3's by default.

Everything that reads AWS takes a factory instead of building clients itself, so that tests hand in moto's clients
and the local AWS is reached through the same code as the real one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ClientFactory = Callable[[str, str], Any]
"""(service name, region) -> a boto3 client."""


def boto3_clients(service: str, region: str) -> Any:
    """Real boto3 clients in `region`; `AWS_ENDPOINT_URL` (e.g. a local moto server) and the credentials are read
    from the environment by boto3 itself, as every other AWS tool does."""
    import boto3

    return boto3.session.Session().client(service, region_name=region)


READ_TIMEOUT_SECONDS = 60.0
"""How long one read of AWS may take (in a worker thread) before the deploy treats AWS as unreadable."""
