"""Where moto's CloudFormation differs from AWS for our templates (see foundry/local/moto.py): it lacks
`AWS::SecretsManager::Secret`, and it creates an `AWS::ECS::Service` without `DesiredCount` with 0 tasks where
CloudFormation uses 1. A module of its own: moto files every model class under the second part of its module name,
which a `python -m` entry point lacks."""

from __future__ import annotations

import json
import secrets
from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.ecs.models import Service
from moto.secretsmanager.models import secretsmanager_backends

ECS_DEFAULT_DESIRED_COUNT = 1
"""AWS::ECS::Service: "For new services, if a desired count is not specified, a default value of 1 is used"."""


class CloudFormationSecret(CloudFormationModel):
    def __init__(self, *, arn: str, name: str, account_id: str, region_name: str) -> None:
        self.arn = arn
        self.name = name
        self.account_id = account_id
        self.region_name = region_name

    @property
    def physical_resource_id(self) -> str:
        """A secret's Ref is its ARN."""
        return self.arn

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::Secret"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> CloudFormationSecret:
        properties = cloudformation_json.get("Properties", {})
        name = properties.get("Name") or resource_name
        created = secretsmanager_backends[account_id][region_name].create_secret(
            name=name,
            secret_string=properties.get("SecretString") or secrets.token_urlsafe(24),
            secret_binary=None,
            description=properties.get("Description"),
            tags=properties.get("Tags"),
            kms_key_id=properties.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        return cls(arn=json.loads(created)["ARN"], name=name, account_id=account_id, region_name=region_name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        name = cloudformation_json.get("Properties", {}).get("Name") or resource_name
        secretsmanager_backends[account_id][region_name].delete_secret(
            secret_id=name, recovery_window_in_days=None, force_delete_without_recovery=True
        )


_create_service = Service.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _create_service_with_cloudformation_default(
    cls: type[Service], resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
) -> Service:
    properties = cloudformation_json["Properties"]
    if properties.get("DesiredCount") is None:
        cloudformation_json = {
            **cloudformation_json,
            "Properties": {**properties, "DesiredCount": ECS_DEFAULT_DESIRED_COUNT},
        }
    created: Service = _create_service(cls, resource_name, cloudformation_json, *args, **kwargs)
    return created


Service.create_from_cloudformation_json = classmethod(_create_service_with_cloudformation_default)  # type: ignore[method-assign,assignment]
