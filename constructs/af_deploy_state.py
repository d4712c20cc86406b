"""The environment's deploy state: one DynamoDB table where every deployer of the environment (CI rollouts, the
Foundry MCP server, an engineer's clone) keeps rollout records and per-instance deploy locks (leases taken and
renewed with conditional writes: foundry/state/dynamodb_store.py), published by name as an SSM parameter.

An L2 `aws_dynamodb.Table` rather than `TableV2`: one region, and moto's CloudFormation (the local AWS) models
`AWS::DynamoDB::Table` but not `AWS::DynamoDB::GlobalTable`. Its items are coordination state, not tenant data:
the table goes with its platform stack (DESTROY), and its name is CloudFormation's, found through the parameter.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, aws_dynamodb, aws_iam
from aws_cdk import aws_ssm as ssm

from constructs import Construct

PARTITION_KEY = "pk"
"""foundry/state/dynamodb_store.py's PARTITION_KEY: `deploy-lock/<env>/<org>/<domain>/<instance>`, `rollout/<env>`."""


class AfDeployState(Construct):
    def __init__(self, scope: Construct, id_: str, *, parameter_name: str) -> None:
        super().__init__(scope, id_)
        self.table = aws_dynamodb.Table(
            self,
            "Table",
            partition_key=aws_dynamodb.Attribute(name=PARTITION_KEY, type=aws_dynamodb.AttributeType.STRING),
            billing_mode=aws_dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=aws_dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=aws_dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.parameter = ssm.StringParameter(
            self, "TableName", parameter_name=parameter_name, string_value=self.table.table_name
        )

    def grant_deployer(self, grantee: aws_iam.IGrantable) -> aws_iam.Grant:
        """What a deployer's role needs: read and conditional writes on this table only."""
        return self.table.grant_read_write_data(grantee)
