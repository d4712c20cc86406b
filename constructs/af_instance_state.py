"""The instance's own thread-state table (DynamoDB), where every task of the instance keeps its conversations.

On-demand, encrypted (AWS-managed, or with the instance's own KMS key), the TTL attribute the runtime writes for
idle threads, point-in-time recovery when the environment asks for it, the instance's tags, and retained when the
stack is deleted (a mistaken delete loses no tenant's data; `python -m foundry offboard` exports it first and keeps
it: docs/deploy.md, "Offboarding"). `grant_task` gives one role read and write on this table only, `grant_read` read
only, and `task_environment` is what the task needs to find it.

An L2 `aws_dynamodb.Table` rather than `TableV2`: the table lives in one region, and moto's CloudFormation (the
local AWS) models `AWS::DynamoDB::Table` but not `AWS::DynamoDB::GlobalTable`.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import RemovalPolicy, Tags, aws_dynamodb, aws_iam, aws_kms

from constructs import Construct
from constructs.af_nag import acknowledge
from instance_contract.thread_state import (
    DYNAMODB_PARTITION_KEY,
    DYNAMODB_SORT_KEY,
    DYNAMODB_TTL_ATTRIBUTE,
    STATE_URL_ENV,
    dynamodb_state_url,
)

DDB3_REASON = (
    "point-in-time recovery is off by this environment's platform.yaml setting (thread_state.point_in_time_recovery; "
    "unset it is off only for an internal plain_http dev environment): its threads are test conversations"
)
STATE_TABLE_ID = "ThreadState"
"""The table's construct id: never change it (a new logical id replaces the table, and RETAIN orphans the old one
with every thread in it)."""


class AfInstanceState(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        point_in_time_recovery: bool,
        tags: Mapping[str, str],
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        encryption_key: aws_kms.IKey | None = None,
    ) -> None:
        """`encryption_key`: the instance's own KMS key (the table is then CUSTOMER_MANAGED); None: AWS-managed."""
        super().__init__(scope, id_)
        self.table = aws_dynamodb.Table(
            self,
            STATE_TABLE_ID,
            partition_key=aws_dynamodb.Attribute(name=DYNAMODB_PARTITION_KEY, type=aws_dynamodb.AttributeType.STRING),
            sort_key=aws_dynamodb.Attribute(name=DYNAMODB_SORT_KEY, type=aws_dynamodb.AttributeType.STRING),
            billing_mode=aws_dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=aws_dynamodb.TableEncryption.AWS_MANAGED
            if encryption_key is None
            else aws_dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=encryption_key,
            point_in_time_recovery_specification=aws_dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=point_in_time_recovery
            ),
            time_to_live_attribute=DYNAMODB_TTL_ATTRIBUTE,
            removal_policy=removal_policy,
        )
        table_tags = Tags.of(self.table)
        for key, value in sorted(tags.items()):
            table_tags.add(key, value)
        if not point_in_time_recovery:
            acknowledge(self.table, "AwsSolutions-DDB3", DDB3_REASON)

    def grant_task(self, role: aws_iam.IGrantable) -> aws_iam.Grant:
        """Read and write on this table (and nothing else): items, queries, scans for export, DescribeTable."""
        return self.table.grant_read_write_data(role)

    def grant_read(self, grantee: aws_iam.IGrantable) -> aws_iam.Grant:
        """Read on this table only (items, queries, scans, DescribeTable): for an export job or a support tool."""
        return self.table.grant_read_data(grantee)

    @property
    def task_environment(self) -> dict[str, str]:
        """The runtime contract: the variable the task reads to find its store."""
        return {STATE_URL_ENV: dynamodb_state_url(self.table.table_name)}
