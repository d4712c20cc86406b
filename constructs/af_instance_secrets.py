"""The instance's Secrets Manager secrets, one per secret name in its manifest, as a CloudFormation fragment.

Each is created with a generated placeholder (so tasks can start before an operator sets the real value with
`aws secretsmanager put-secret-value`); no value is ever in code or in the template.
"""

from __future__ import annotations

from collections.abc import Mapping

from constructs.af_cfn import Acknowledgement, Fragment, Json, logical_id, ref, resource

SCOPE = "Secrets"
SMG4_REASON = (
    "these hold credentials issued by third parties (model providers, ticket systems) that operators set "
    "and rotate at the issuer; Secrets Manager cannot rotate them itself"
)


def secret_construct_id(name: str) -> str:
    """'api-key' -> 'ApiKey'. Part of each secret's logical id: never change it (a new id replaces the secret)."""
    return "".join(part.capitalize() for part in name.split("-"))


def secret_logical_id(name: str) -> str:
    return logical_id(SCOPE, secret_construct_id(name))


def secret_env_var(name: str) -> str:
    """'api-key' -> 'SECRET_API_KEY': the variable ECS injects the value into (the runtime contract)."""
    return "SECRET_" + name.upper().replace("-", "_")


def secret_arns(names: Mapping[str, str]) -> dict[str, Json]:
    """Secret name -> ARN (a Ref of a secret is its ARN)."""
    return {name: ref(secret_logical_id(name)) for name in sorted(names)}


def secrets_fragment(*, physical_names: Mapping[str, str], description: str) -> Fragment:
    """`physical_names`: secret name in the manifest -> Secrets Manager name (agentfoundry/<env>/.../<name>)."""
    fragment = Fragment()
    for name in sorted(physical_names):
        lid = secret_logical_id(name)
        fragment.resources[lid] = resource(
            "AWS::SecretsManager::Secret",
            {
                "Name": physical_names[name],
                "Description": f"{description}: {name} (placeholder until an operator sets the value)",
                "GenerateSecretString": {"PasswordLength": 32, "ExcludePunctuation": True},
            },
        )
        fragment.acknowledgements.append(Acknowledgement(lid, "AwsSolutions-SMG4", SMG4_REASON))
    return fragment
