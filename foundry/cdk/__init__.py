"""The one adapter for the CDK CLI: running it as a subprocess (argv list, fixed cwd, hard timeout, secrets
withheld), and reading what it writes (cloud assemblies, its output).

May import `foundry.manifests` (names); used by deploy, plan, rollout and the local AWS.
"""
