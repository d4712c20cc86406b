"""The pre-token-generation trigger of the platform's Cognito pool: a Lambda function (constructs/functions/org_claim/)
attached with event version V3_0, so that every token the pool issues, client credentials included, carries the
caller's organization in the claim the instances require.

Its configuration is synthesized: the claim name, and the SSM path under which the platform writes each
organization's app client id (`<path>/<organization>/client-id`). The function reads the parameters under that path
(its role may read nothing else); the client ids themselves cannot be in its environment, because the pool refers to
the function and the clients to the pool (a dependency circle).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

from constructs import Construct
from constructs.af_nag import acknowledge

CODE_DIR = Path(__file__).resolve().parent / "functions" / "org_claim"
HANDLER = "org_claim.handler"
PATH_VARIABLE = "ORG_CLIENT_ID_PATH"
CLAIM_VARIABLE = "ORG_CLAIM"


def _as_nag_reports_it(stack: Stack, arn: str) -> str:
    """cdk-nag names a resource by its resolved text, pseudo parameters as `<AWS::Partition>`."""
    resolved = stack.resolve(arn)
    if isinstance(resolved, str):
        return resolved
    parts = resolved["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else f"<{p['Ref']}>" for p in parts)


class AfOrgClaimTrigger(Construct):
    """`client_ids_path`: the SSM path whose `<organization>/client-id` parameters hold the app client ids."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        user_pool: cognito.UserPool,
        client_ids_path: str,
        claim: str,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, id_)
        if not client_ids_path.startswith("/") or client_ids_path.endswith("/"):
            raise ValueError(
                f"client_ids_path {client_ids_path!r}: an SSM path starts with '/' and does not end with it"
            )
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Agent Foundry organization-claim trigger: reads the organizations' client id parameters",
        )
        self.log_group.grant_write(self.role)
        stack = Stack.of(self)
        path_arn = stack.format_arn(service="ssm", resource="parameter", resource_name=client_ids_path.lstrip("/"))
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["ssm:GetParametersByPath"], resources=[path_arn, f"{path_arn}/*"])
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
                PATH_VARIABLE: client_ids_path,
                CLAIM_VARIABLE: claim,
            },
        )
        user_pool.add_trigger(
            cognito.UserPoolOperation.PRE_TOKEN_GENERATION_CONFIG, self.function, cognito.LambdaVersion.V3_0
        )
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::{_as_nag_reports_it(stack, path_arn)}/*]",
            "the function reads the parameters under one SSM path (`<path>/*`: one client id parameter per "
            "organization, added as organizations are); nothing else",
        )
