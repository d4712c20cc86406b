"""Deploy state shared by every deployer of an environment: leases (per-instance deploy locks, one rollout per
environment) and the records they fence (rollout state), in a DynamoDB table of the platform stack or, locally,
a SQLite file (`FOUNDRY_STATE_URL`). See docs/deploy.md, "Where deploy state and locks live".

Imports `foundry.aws` (the boto3 client factory) and nothing else of the control plane; `foundry.deploy` and
`foundry.rollout` import it.
"""
