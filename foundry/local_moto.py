"""moto's server, plus the one CloudFormation resource type our instance stacks need that moto 5.2 lacks:
`AWS::SecretsManager::Secret` (an instance's secrets, which its task execution role is granted by ARN; without
the secret the grant's resource resolves to nothing and moto's IAM refuses the policy).

The secret is created in moto's own Secrets Manager with a random placeholder value, as CloudFormation would with
`GenerateSecretString`. Started by `foundry.local_aws` as `python -m foundry.local_moto -H 127.0.0.1 -p PORT`.
"""

from __future__ import annotations

import sys


def main() -> None:
    # Defines the model before moto's CloudFormation first lists its models (it caches the list).
    from moto.server import main as moto_main

    import foundry.local_moto_secrets  # noqa: F401

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
