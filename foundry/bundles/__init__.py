"""Runtime bundles: the instance manifest rendered to bytes, the graph and MCP tool documents the runtime compiles,
and the reproducible archive with its content hash.

May import `foundry.files`, `foundry.manifests` and `instance_contract`.
"""
