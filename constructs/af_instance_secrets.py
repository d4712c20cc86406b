"""The instance's Secrets Manager secrets, one per secret name in its manifest.

Each is created with a generated placeholder (so tasks can start before an operator sets the real value with
`aws secretsmanager put-secret-value`); no value is ever in code or in the template.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import aws_secretsmanager as secretsmanager

from constructs import Construct
from constructs.af_nag import acknowledge


def secret_construct_id(name: str) -> str:
    """'api-key' -> 'ApiKey'. Part of each secret's logical id: never change it (a new id replaces the secret)."""
    return "".join(part.capitalize() for part in name.split("-"))


def secret_env_var(name: str) -> str:
    """'api-key' -> 'SECRET_API_KEY': the variable ECS injects the value into (the runtime contract)."""
    return "SECRET_" + name.upper().replace("-", "_")


class AfInstanceSecrets(Construct):
    def __init__(self, scope: Construct, id_: str, *, physical_names: Mapping[str, str], description: str) -> None:
        """`physical_names`: secret name in the manifest -> Secrets Manager name (agentfoundry/<env>/.../<name>)."""
        super().__init__(scope, id_)
        self.secrets: dict[str, secretsmanager.CfnSecret] = {}
        for name in sorted(physical_names):
            self.secrets[name] = secretsmanager.CfnSecret(
                self,
                secret_construct_id(name),
                name=physical_names[name],
                description=f"{description}: {name} (placeholder until an operator sets the value)",
                generate_secret_string=secretsmanager.CfnSecret.GenerateSecretStringProperty(
                    password_length=32, exclude_punctuation=True
                ),
            )
        acknowledge(
            self,
            "AwsSolutions-SMG4",
            "these hold credentials issued by third parties (model providers, ticket systems) that operators set "
            "and rotate at the issuer; Secrets Manager cannot rotate them itself",
        )

    @property
    def arns(self) -> dict[str, str]:
        """Secret name -> ARN (a Ref of a secret is its ARN)."""
        return {name: secret.ref for name, secret in self.secrets.items()}
