"""Deploying one instance: the platform gate, the image policy, per-instance locks, and the deployer that runs
`cdk deploy --exclusively` and watches CloudFormation after a stop.

May import `foundry.manifests`, `foundry.cdk` and `foundry.aws`.
"""
