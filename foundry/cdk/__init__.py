"""The one adapter for the CDK CLI: the argv of every command the Foundry runs (`cli`), running it as a subprocess
(`process`: argv list, fixed cwd, hard timeout, secrets withheld; `run_blocking` for synchronous callers), and
reading what it prints and writes (`output`: stack events, failures, the outputs file; `cloud_assembly`); and
running the app the way `cdk synth` does, without the CLI (`app_synth`: a shard of `foundry synth`).

May import `foundry.aws.cloudformation` (cdk's event lines name the same failures CloudFormation records); used by
deploy, plan, rollout and the local AWS. Nothing else builds a `cdk` argv, starts `cdk` or runs the CDK app.
"""
