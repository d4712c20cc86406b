"""What each tenant used and what it cost (`python -m foundry usage`, `foundry.get_instance_usage`): every instance of
an environment is asked through its own `usage` MCP tool (never its store), its compute hours are read from ECS's
Container Insights metrics in CloudWatch (or estimated from its template), and both are priced with the
environment's `pricing:` in agents/platform.yaml.

May import `foundry.deploy`, `foundry.plan`, `foundry.aws`, `foundry.fleet`, `foundry.manifests` and the shared
`instance_contract`.
"""
