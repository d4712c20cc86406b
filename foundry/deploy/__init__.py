"""Deploying one instance: what is asked and answered (`request`), the platform gate, the image policy,
per-instance locks (`locks`), the deployer that runs `cdk deploy --exclusively` (`deployer`), and the watch of
CloudFormation after a stopped deploy (`interruption`).

May import `foundry.manifests`, `foundry.cdk` and `foundry.aws`.
"""
