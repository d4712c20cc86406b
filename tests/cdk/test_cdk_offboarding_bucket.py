"""The platform stack's bucket for offboarding exports (issue 24): private, encrypted, TLS only, versioned,
retained, access-logged, and named in the stack output `python -m foundry offboard` reads."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match, Template

from constructs.af_platform_contract import OFFBOARDING_BUCKET_OUTPUT
from foundry.deploy.offboard import PLATFORM_BUCKET_OUTPUT
from tests.cdk.test_cdk_deploy_state import platform_template


def exports_bucket(template: Template) -> tuple[str, Any]:
    buckets = template.find_resources("AWS::S3::Bucket", {"Properties": {"VersioningConfiguration": Match.any_value()}})
    assert len(buckets) == 1, buckets
    return next(iter(buckets.items()))


def test_the_exports_bucket_is_private_encrypted_versioned_logged_and_retained() -> None:
    for environment in ("dev", "prod"):
        template = platform_template(environment)
        logical_id, bucket = exports_bucket(template)
        assert bucket["DeletionPolicy"] == "Retain" and bucket["UpdateReplacePolicy"] == "Retain"
        properties = bucket["Properties"]
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        rule = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert properties["LoggingConfiguration"]["LogFilePrefix"] == "offboarding-exports/"
        template.has_resource_properties(
            "AWS::S3::BucketPolicy",
            {
                "Bucket": {"Ref": logical_id},
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                    )
                },
            },
        )


def test_the_platform_names_the_bucket_in_the_output_the_foundry_reads() -> None:
    assert OFFBOARDING_BUCKET_OUTPUT == PLATFORM_BUCKET_OUTPUT
    template = platform_template("dev")
    logical_id, _ = exports_bucket(template)
    template.has_output(OFFBOARDING_BUCKET_OUTPUT, {"Value": {"Ref": logical_id}})
