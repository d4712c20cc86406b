"""The token issuer of an environment whose settings name none: an Amazon Cognito user pool whose resource server
`agentfoundry` has the scopes `invoke` and `read`, a machine-to-machine app client (client credentials grant) and
the pool's domain for its token endpoint. The issuer URL, the client id and the token endpoint are published as SSM
parameters for the instance stacks (AUTH_ISSUER, AUTH_AUDIENCE with AUTH_AUDIENCE_CLAIM=client_id).

Cognito's access tokens carry no organization: the instances require one (AUTH_ORG_CLAIM, `org`). A pre-token-
generation trigger (event version V3_0, which covers the client credentials grant; it needs the Essentials feature
plan this pool uses) adds it; see docs/runtime.md, "Tokens from the platform's Cognito pool".
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ssm as ssm

from constructs import Construct
from constructs.af_nag import acknowledge
from constructs.af_platform_contract import IdentityParameters

RESOURCE_SERVER = "agentfoundry"
INVOKE, READ = "invoke", "read"


class AfPlatformIdentity(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        pool_name: str,
        domain_prefix: str,
        parameters: IdentityParameters,
        access_token_minutes: int = 60,
    ) -> None:
        super().__init__(scope, id_)
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            user_pool_name=pool_name,
            self_sign_up_enabled=False,
            feature_plan=cognito.FeaturePlan.ESSENTIALS,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
            password_policy=cognito.PasswordPolicy(
                min_length=14, require_digits=True, require_lowercase=True, require_uppercase=True, require_symbols=True
            ),
            account_recovery=cognito.AccountRecovery.NONE,
        )
        invoke = cognito.ResourceServerScope(scope_name=INVOKE, scope_description="call an instance's invoke tool")
        read = cognito.ResourceServerScope(scope_name=READ, scope_description="describe, status and metrics")
        self.resource_server = self.user_pool.add_resource_server(
            "ResourceServer",
            identifier=RESOURCE_SERVER,
            user_pool_resource_server_name=RESOURCE_SERVER,
            scopes=[invoke, read],
        )
        self.domain = self.user_pool.add_domain(
            "Domain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=domain_prefix)
        )
        self.client = self.user_pool.add_client(
            "MachineClient",
            generate_secret=True,
            auth_flows=cognito.AuthFlow(),  # no user sign-in flows: machines only
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(client_credentials=True),
                scopes=[
                    cognito.OAuthScope.resource_server(self.resource_server, invoke),
                    cognito.OAuthScope.resource_server(self.resource_server, read),
                ],
            ),
            access_token_validity=Duration.minutes(access_token_minutes),
            enable_token_revocation=True,
            prevent_user_existence_errors=True,
        )
        # The tokens' `iss`: https://cognito-idp.<region>.<url suffix>/<pool id> (the pool's ProviderURL with a
        # scheme; built from the pool id so that it is a Ref, which an emulator that does not model Cognito leaves
        # empty instead of failing the stack on an unknown GetAtt)
        stack = Stack.of(self)
        self.issuer_url = f"https://cognito-idp.{stack.region}.{stack.url_suffix}/{self.user_pool.user_pool_id}"
        self.token_endpoint = f"{self.domain.base_url()}/oauth2/token"
        for construct_id, name, value in (
            ("IssuerUrlParameter", parameters.issuer_url, self.issuer_url),
            ("ClientIdParameter", parameters.client_id, self.client.user_pool_client_id),
            ("TokenEndpointParameter", parameters.token_endpoint, self.token_endpoint),
        ):
            ssm.StringParameter(self, construct_id, parameter_name=name, string_value=value)
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG2",
            "no person signs in to this pool (self sign-up off, no user flows): its only clients are machines using "
            "the client credentials grant, for which MFA does not apply",
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG8",
            "the Plus plan adds threat protection for user sign-ins; the Essentials plan already covers what machine "
            "clients need (client credentials, and the V3 pre-token trigger that adds the org claim)",
        )
