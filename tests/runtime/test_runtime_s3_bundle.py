"""Bundles on S3 (s3://bucket/key), against moto's in-process AWS emulator."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from runtime.bundle_source import BundleError, load_bundle
from runtime.config import ExpectedIdentity
from tests.runtime.runtime_harness import BuiltBundle

BUCKET = "af-dev-bundles"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_a_bundle_is_loaded_from_s3_and_checked_against_its_hash(
    s3: object, example_bundles: list[BuiltBundle]
) -> None:
    built = example_bundles[0]
    s3.put_object(Bucket=BUCKET, Key="dev/bundle.tar.gz", Body=built.path.read_bytes())  # type: ignore[attr-defined]
    identity = built.instance.manifest.spec.identity
    loaded = load_bundle(
        f"s3://{BUCKET}/dev/bundle.tar.gz",
        expected_hash=built.content_hash,
        identity=ExpectedIdentity(identity.organization_id, identity.domain_id, identity.environment),
        region="us-east-1",
    )
    assert loaded.content_hash == built.content_hash
    assert loaded.instance.metadata.name == built.instance.manifest.metadata.name


def test_a_missing_s3_object_is_named(s3: object) -> None:
    with pytest.raises(BundleError, match=rf"s3://{BUCKET}/nope.tar.gz: cannot fetch the bundle from S3 \(NoSuchKey\)"):
        load_bundle(f"s3://{BUCKET}/nope.tar.gz", expected_hash=None, identity=ExpectedIdentity(), region="us-east-1")


def test_an_s3_uri_without_a_key_is_refused(s3: object) -> None:
    with pytest.raises(BundleError, match="must be s3://BUCKET/KEY"):
        load_bundle(f"s3://{BUCKET}", expected_hash=None, identity=ExpectedIdentity())
