"""The pre-token-generation trigger of the platform's Cognito pool: a Lambda function (constructs/functions/org_claim/)
attached with event version V3_0, so that every token the pool issues, client credentials included, carries the
caller's organization in the claim the instances require.

Its configuration is synthesized from the manifests: the claim name, and per organization the SSM parameter that
holds that organization's app client id. The function reads exactly those parameters (its role may read nothing
else); the client ids themselves cannot be in its environment, because the pool refers to the function and the
clients to the pool (a dependency circle).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

from constructs import Construct

CODE_DIR = Path(__file__).resolve().parent / "functions" / "org_claim"
HANDLER = "org_claim.handler"
PARAMETERS_VARIABLE = "ORG_CLIENT_ID_PARAMETERS"
CLAIM_VARIABLE = "ORG_CLAIM"


class AfOrgClaimTrigger(Construct):
    """`client_id_parameters`: organization id -> name of the SSM parameter holding its app client id."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        user_pool: cognito.UserPool,
        client_id_parameters: Mapping[str, str],
        claim: str,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, id_)
        if not client_id_parameters:
            raise ValueError("the organization-claim trigger needs at least one organization (none was given)")
        parameters = dict(sorted(client_id_parameters.items()))
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Agent Foundry organization-claim trigger: reads the organizations' client id parameters",
        )
        self.log_group.grant_write(self.role)
        stack = Stack.of(self)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameters"],
                resources=[
                    stack.format_arn(service="ssm", resource="parameter", resource_name=name.lstrip("/"))
                    for name in parameters.values()
                ],
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description="Adds the organization claim to the tokens of the platform's Cognito pool (V3_0 trigger)",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(CODE_DIR), exclude=["__pycache__", "*.pyc"]),
            role=self.role,
            log_group=self.log_group,
            memory_size=256,
            timeout=Duration.seconds(5),
            environment={
                PARAMETERS_VARIABLE: json.dumps(parameters, sort_keys=True, separators=(",", ":")),
                CLAIM_VARIABLE: claim,
            },
        )
        user_pool.add_trigger(
            cognito.UserPoolOperation.PRE_TOKEN_GENERATION_CONFIG, self.function, cognito.LambdaVersion.V3_0
        )
