"""moto's server, made to behave like AWS where our instance stacks need it (foundry/local/moto_models.py): it gets
the CloudFormation type `AWS::SecretsManager::Secret` that moto 5.2 lacks (an instance's secrets, which its task
execution role is granted by ARN; without the secret the grant's resource resolves to nothing and moto's IAM
refuses the policy), and a service created without `DesiredCount` starts with CloudFormation's default of 1 task
(moto uses 0), since the stacks leave the count to autoscaling. Its DynamoDB answers one request at a time
(foundry/local/moto_dynamodb.py), so a transaction is isolated from other writes as in DynamoDB.

The secret is created in moto's own Secrets Manager with a random placeholder value, as CloudFormation would with
`GenerateSecretString`. Started by `foundry.local.aws` as `python -m foundry.local.moto -H 127.0.0.1 -p PORT`.
"""

from __future__ import annotations

import sys


def main() -> None:
    # Defines the model before moto's CloudFormation first lists its models (it caches the list).
    from moto.server import main as moto_main

    import foundry.local.moto_models  # noqa: F401
    from foundry.local.moto_dynamodb import serialise_dynamodb_requests

    serialise_dynamodb_requests()
    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
