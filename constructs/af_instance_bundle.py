"""The instance's runtime bundle as a content-addressed S3 file asset.

The object key is the archive's sha256, so an unchanged instance keeps a byte-identical template, and the read
grant names exactly this object (no wildcard): an instance cannot read another instance's bundle.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_s3_assets as s3_assets

from constructs import Construct
from constructs.af_cfn import PARTITION, Json, join, literal


@dataclass(frozen=True)
class BundleLocation:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def object_arn(self) -> Json:
        return join("arn:", PARTITION, f":s3:::{self.bucket}/{self.key}")


def stage_bundle(scope: Construct, id_: str, *, archive_path: str) -> BundleLocation:
    """CDK stages and publishes the bundle as a file asset (the one CDK construct an instance needs besides its
    stack and, without a prebuilt image, its image asset). Its bucket and key are literals at synth (the stack's
    account and region are), so fragments can name them."""
    asset = s3_assets.Asset(scope, id_, path=archive_path)
    # Each attribute read is a round trip to the jsii Node process: read once.
    return BundleLocation(
        bucket=literal(asset.s3_bucket_name, "the bundle's bucket"),
        key=literal(asset.s3_object_key, "the bundle's object key"),
    )
