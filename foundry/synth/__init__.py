"""Cloud assemblies as deployable artifacts: `python -m foundry synth` (the whole fleet, an environment or a few
instances, in one process or in shards of bounded memory, at most J processes at once), the index of a sharded set
(stack -> assembly, each assembly's digest), and reading a set back for a rollout, refusing one that was altered.

May import `foundry.cdk`, `foundry.fleet`, `foundry.manifests` and `foundry.files`; used by `foundry.rollout` and
`foundry.cli`.
"""
