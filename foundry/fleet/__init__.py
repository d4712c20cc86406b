"""The fleet: every resolved instance of `agents/` (cached by content), selected by environment or instance, and
each instance's ALB slot (placement files and `python -m foundry place`), and the catalog the Foundry MCP tools list
(agents, agent configs, instances with their bundle hashes).

May import `foundry.files`, `foundry.manifests` and `foundry.bundles`.
"""
