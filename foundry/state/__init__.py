"""Deploy state shared by every deployer of an environment: leases (per-instance deploy locks, one rollout per
environment) and the records they fence (rollout state), in a DynamoDB table of the platform stack or, locally,
a SQLite file. See docs/deploy.md, "Where deploy state and locks live"."""
