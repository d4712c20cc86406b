"""Agent Foundry control plane: from the manifests in `agents/` to deployed, running instances.

Subpackages follow the data's path, each importing only those before it (`files` is the floor, `mcp` and the CLI
the top): files → manifests → bundles → fleet → aws → cdk → deploy, plan → rollout → mcp. `local` (moto-based
local AWS) is a developer tool beside them, imported by nothing of the control plane. The runtime (`runtime/`)
imports nothing of this package: what both sides read lives in `instance_contract/`. `lint-imports` (rules in
pyproject.toml) checks all of it.
"""
