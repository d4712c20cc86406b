"""Deploying one instance: what is asked and answered (`request`), the checks of every argument a deploy is asked
with (`arguments`), the platform gate, the image policy, per-instance locks (`locks`), the deployer that runs
`cdk deploy --exclusively` (`deployer`), and the watch of CloudFormation after a stopped deploy (`interruption`);
also data-subject requests carried to a deployed instance's own MCP tools (`subject_data`), and offboarding an
instance: its table exported, its stack deleted, its key's deletion scheduled (`offboard`, `offboard_command`).

May import `foundry.manifests`, `foundry.fleet`, `foundry.cdk`, `foundry.state` and `foundry.aws`.
"""
