"""The instance's runtime bundle as a content-addressed S3 file asset.

The object key is the archive's sha256, so an unchanged instance keeps a byte-identical template, and the read
grant names exactly this object (no wildcard): an instance cannot read another instance's bundle.
"""

from __future__ import annotations

from aws_cdk import aws_s3_assets as s3_assets

from constructs import Construct
from constructs.af_tokens import partition


class AfInstanceBundle(Construct):
    def __init__(self, scope: Construct, id_: str, *, archive_path: str, content_hash: str) -> None:
        super().__init__(scope, id_)
        self.asset = s3_assets.Asset(self, "Archive", path=archive_path)
        self.content_hash = content_hash
        # Each attribute read is a round trip to the jsii Node process: read once, build both strings from them.
        bucket, key = self.asset.s3_bucket_name, self.asset.s3_object_key
        self.uri = f"s3://{bucket}/{key}"
        self.object_arn = f"arn:{partition()}:s3:::{bucket}/{key}"
