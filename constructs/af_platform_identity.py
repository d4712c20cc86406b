"""The token issuer of an environment whose settings name none: an Amazon Cognito user pool whose resource server
`agentfoundry` has the scopes `invoke` and `read`, one machine-to-machine app client per organization (client
credentials grant) and the pool's domain for its token endpoint. The issuer URL, the token endpoint and each
organization's client id are published as SSM parameters for the instance stacks (AUTH_ISSUER; AUTH_AUDIENCE, the
instance's organization's client id, with AUTH_AUDIENCE_CLAIM=client_id).

Cognito's access tokens carry no organization: the instances require one (AUTH_ORG_CLAIM). The pool's pre-token-
generation trigger (constructs/af_org_claim_trigger.py, event version V3_0, which also runs for the client
credentials grant and needs the Essentials feature plan this pool uses) adds it, mapping each client to its
organization; see docs/runtime.md, "Tokens from the platform's Cognito pool".
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm

from constructs import Construct
from constructs.af_nag import acknowledge
from constructs.af_org_claim_trigger import AfOrgClaimTrigger
from constructs.af_platform_contract import IdentityParameters

RESOURCE_SERVER = "agentfoundry"
INVOKE, READ, APPROVE = "invoke", "read", "approve"


class AfPlatformIdentity(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        pool_name: str,
        domain_prefix: str,
        parameters: IdentityParameters,
        organizations: Sequence[str],
        org_claim: str,
        access_token_minutes: int = 60,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        """`organizations`: the organizations whose instances take this pool's tokens (one app client each)."""
        super().__init__(scope, id_)
        if len(set(organizations)) != len(organizations):
            raise ValueError(f"organizations must be unique: {sorted(organizations)}")
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
        approve = cognito.ResourceServerScope(
            scope_name=APPROVE, scope_description="decide tool calls that wait for approval"
        )
        self.resource_server = self.user_pool.add_resource_server(
            "ResourceServer",
            identifier=RESOURCE_SERVER,
            user_pool_resource_server_name=RESOURCE_SERVER,
            scopes=[invoke, read, approve],
        )
        self.domain = self.user_pool.add_domain(
            "Domain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=domain_prefix)
        )
        # approve is allowed too, so an organization's approver can get a token with it; a client that asks for
        # `scope=agentfoundry/invoke agentfoundry/read` gets a token that cannot decide approvals
        scopes = [cognito.OAuthScope.resource_server(self.resource_server, s) for s in (invoke, read, approve)]
        self.clients: dict[str, cognito.UserPoolClient] = {
            organization: self.user_pool.add_client(
                f"Client-{organization}",
                user_pool_client_name=organization,
                generate_secret=True,
                auth_flows=cognito.AuthFlow(),  # no user sign-in flows: machines only
                o_auth=cognito.OAuthSettings(flows=cognito.OAuthFlows(client_credentials=True), scopes=scopes),
                access_token_validity=Duration.minutes(access_token_minutes),
                enable_token_revocation=True,
                prevent_user_existence_errors=True,
            )
            for organization in sorted(organizations)
        }
        # The tokens' `iss`: https://cognito-idp.<region>.<url suffix>/<pool id> (the pool's ProviderURL with a
        # scheme; built from the pool id so that it is a Ref, which an emulator that does not model Cognito leaves
        # empty instead of failing the stack on an unknown GetAtt)
        stack = Stack.of(self)
        self.issuer_url = f"https://cognito-idp.{stack.region}.{stack.url_suffix}/{self.user_pool.user_pool_id}"
        self.token_endpoint = f"{self.domain.base_url()}/oauth2/token"
        for construct_id, name, value in (
            ("IssuerUrlParameter", parameters.issuer_url, self.issuer_url),
            ("TokenEndpointParameter", parameters.token_endpoint, self.token_endpoint),
            *(
                (f"ClientIdParameter-{org}", parameters.client_id(org), client.user_pool_client_id)
                for org, client in self.clients.items()
            ),
        ):
            ssm.StringParameter(self, construct_id, parameter_name=name, string_value=value)
        self.trigger = (
            AfOrgClaimTrigger(
                self,
                "OrgClaim",
                user_pool=self.user_pool,
                client_ids_path=parameters.organizations_prefix,
                claim=org_claim,
                log_retention=log_retention,
            )
            if self.clients
            else None
        )
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
