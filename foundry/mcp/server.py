"""The Foundry MCP server: the control plane's only API (the UI, VS Code and the CLI all come through here).

Thin by design: each tool checks its arguments against the manifests (`foundry.mcp.tool_args`), calls the core
(`foundry.fleet.load`, `foundry.deploy.deployer`, `foundry.aws.instance_status`) and returns structured content.
Tool names carry the design's `foundry.` prefix: the MCP spec (SEP-986) and the SDK allow `A-Z a-z 0-9 _ - .` in
tool names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import ToolAnnotations

from foundry.aws.clients import ClientFactory
from foundry.aws.instance_status import InstanceProbe, instance_status
from foundry.bundles.archive import build_bundle
from foundry.cdk.output import StackEvent
from foundry.deploy.deployer import Deployer
from foundry.deploy.locks import DeployInProgressError
from foundry.deploy.request import DEFAULT_TIMEOUT_SECONDS, DeployRequest
from foundry.fleet.load import load_fleet
from foundry.fleet.model import Fleet
from foundry.manifests.problems import ManifestError
from foundry.manifests.resolve import ResolvedInstance
from foundry.mcp.rollout_tool import register_rollout_status
from foundry.mcp.tool_args import (
    ToolArgumentError,
    check_environment,
    check_id,
    check_instance_filter,
    check_repo_path,
    check_runtime_image,
    check_timeout,
    find_instance,
)

SERVER_NAME = "agent-foundry"


@dataclass
class FoundryConfig:
    repo_root: Path
    agents_dir: Path
    """The default agents tree; a tool's `agents_dir` argument may pick another one inside the repository."""
    deployer: Deployer
    clients: ClientFactory
    probe: InstanceProbe | None


def _fleet(config: FoundryConfig, agents_dir: str | None) -> tuple[Fleet, Path]:
    directory = config.agents_dir if agents_dir is None else check_repo_path("agents_dir", agents_dir, config.repo_root)
    try:
        return load_fleet(directory), directory
    except ManifestError as exc:
        raise ToolError(str(exc)) from exc


def _checked(fn: Any) -> Any:
    """Turns a refused argument into a tool error whose text is the refusal."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except (ToolArgumentError, DeployInProgressError) as exc:
            raise ToolError(str(exc)) from exc

    return wrapper


def _binding(instance: ResolvedInstance, agent: Any, system: bool) -> dict[str, Any]:
    return {
        "agent_id": agent.agent_id,
        "role": agent.role,
        "version": agent.version,
        "spec_path": agent.spec_path,
        "system_agent": system,
        "environment": instance.environment,
        "instance": instance.key.selector,
        "organization_id": instance.key.organization_id,
        "domain_id": instance.key.domain_id,
        "instance_id": instance.key.instance_id,
    }


async def _log(ctx: Context, line: str, logger_name: str) -> None:
    """Log notifications are deprecated from protocol 2026-07-28 (SEP-2577; sent there only to clients that opt
    in), but handshake-era clients (today's editors and desktop apps) show them: send both them and progress."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await ctx.log("info", line, logger_name=logger_name)


def build_server(
    config: FoundryConfig, *, token_verifier: TokenVerifier | None = None, auth: AuthSettings | None = None
) -> MCPServer:
    server: MCPServer = MCPServer(
        SERVER_NAME,
        instructions="Browse the agents in agents/, deploy one instance with the CDK CLI, and read its status.",
        token_verifier=token_verifier,
        auth=auth,
    )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(name="foundry.list_agents", annotations=read_only)
    @_checked
    async def list_agents(
        organization: str | None = None,
        domain: str | None = None,
        environment: str | None = None,
        instance: str | None = None,
        agents_dir: str | None = None,
    ) -> dict[str, Any]:
        """Every agent bound to an instance, from the manifests; filter by organization, domain, environment and
        instance (an instance id, or ORG/DOMAIN/INSTANCE)."""

        def work() -> dict[str, Any]:
            fleet, _ = _fleet(config, agents_dir)
            if environment is not None:
                check_environment(fleet, environment)
            for name, value in (("organization", organization), ("domain", domain)):
                if value is not None:
                    check_id(name, value)
            if instance is not None:
                check_instance_filter(instance)
            bindings = []
            for resolved in fleet.instances:
                key = resolved.key
                if (
                    (organization and key.organization_id != organization)
                    or (domain and key.domain_id != domain)
                    or (environment and resolved.environment != environment)
                    or (instance and instance not in (key.instance_id, key.selector))
                ):
                    continue
                spec = resolved.manifest.spec
                bindings += [_binding(resolved, a, True) for a in spec.system_agents]
                bindings += [_binding(resolved, a, False) for a in spec.custom_agents]
            return {"count": len(bindings), "agents": bindings}

        return await asyncio.to_thread(work)

    @server.tool(name="foundry.get_agent_config", annotations=read_only)
    @_checked
    async def get_agent_config(
        agent_id: str, environment: str | None = None, agents_dir: str | None = None
    ) -> dict[str, Any]:
        """An agent's spec (as validated) and every (environment, instance) it is bound to, with the external MCP
        tools it may use there and the server each comes from (servers may differ per tenant)."""

        def work() -> dict[str, Any]:
            fleet, directory = _fleet(config, agents_dir)
            check_id("agent_id", agent_id)
            if environment is not None:
                check_environment(fleet, environment)
            specs: dict[str, dict[str, Any]] = {}
            known: set[str] = set()
            for resolved in fleet.instances:
                for agent in resolved.manifest.spec.agents:
                    known.add(agent.agent_id)
                    if agent.agent_id != agent_id or (environment and resolved.environment != environment):
                        continue
                    entry = specs.setdefault(
                        agent.spec_path,
                        {
                            "spec_path": agent.spec_path,
                            "file": str((directory / agent.spec_path).relative_to(config.repo_root))
                            if (directory / agent.spec_path).is_relative_to(config.repo_root)
                            else str(directory / agent.spec_path),
                            "spec": resolved.specs[agent.spec_path].model_dump(mode="json"),
                            "bound_to": [],
                        },
                    )
                    servers = {server.name: server for server in resolved.manifest.spec.mcp.servers}
                    external = [t for t in resolved.specs[agent.spec_path].spec.tools if "." in t]
                    entry["bound_to"].append(
                        {
                            "environment": resolved.environment,
                            "instance": resolved.key.selector,
                            "role": agent.role,
                            "external_tools": [
                                {
                                    "tool": tool,
                                    "server": servers[tool.split(".", 1)[0]].name,
                                    "url": servers[tool.split(".", 1)[0]].url,
                                    "bearer_secret": servers[tool.split(".", 1)[0]].bearer_secret,
                                }
                                for tool in external
                            ],
                        }
                    )
            if not specs:
                where = f" in environment {environment!r}" if environment else ""
                raise ToolArgumentError(
                    f"agent_id: no agent {agent_id!r} is bound to any instance{where}; "
                    f"known: {', '.join(sorted(known))}"
                )
            return {"agent_id": agent_id, "specs": [specs[k] for k in sorted(specs)]}

        return await asyncio.to_thread(work)

    @server.tool(name="foundry.list_instances", annotations=read_only)
    @_checked
    async def list_instances(environment: str | None = None, agents_dir: str | None = None) -> dict[str, Any]:
        """Every (organization, domain, environment, instance) with its hostname, stack name and bundle hash."""

        def work() -> dict[str, Any]:
            fleet, _ = _fleet(config, agents_dir)
            if environment is not None:
                check_environment(fleet, environment)
            rows = [
                {
                    "environment": i.environment,
                    "organization_id": i.key.organization_id,
                    "domain_id": i.key.domain_id,
                    "instance_id": i.key.instance_id,
                    "instance": i.key.selector,
                    "hostname": i.manifest.spec.hostname,
                    "stack_name": i.manifest.spec.stack_name,
                    "bundle_hash": build_bundle(i).content_hash,
                    "agents": len(i.manifest.spec.agents),
                }
                for i in fleet.instances
                if environment is None or i.environment == environment
            ]
            return {"count": len(rows), "instances": rows}

        return await asyncio.to_thread(work)

    @server.tool(
        name="foundry.deploy_instance",
        annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=True),
    )
    @_checked
    async def deploy_instance(
        environment: str,
        instance: str,
        ctx: Context,
        dry_run: bool = False,
        runtime_image: str | None = None,
        timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
        agents_dir: str | None = None,
    ) -> dict[str, Any]:
        """Deploy one instance (ORG/DOMAIN/INSTANCE in ENVIRONMENT) with `cdk deploy`, streaming cdk's progress.
        dry_run: synthesize only that instance's stacks and diff them against what is deployed, change nothing.
        runtime_image: a prebuilt runtime image URI (REGISTRY/REPO:TAG or @sha256:...) instead of building one,
        from a repository the environment allows (agents/platform.yaml; by default its own ECR registry).
        Deploys only the instance's stack: a missing or out-of-date platform stack is reported, not deployed.
        One deploy per instance at a time: a second request while one runs (or while CloudFormation still works on
        the stack of a stopped one) is refused."""

        def prepare() -> DeployRequest:
            fleet, directory = _fleet(config, agents_dir)
            resolved = find_instance(fleet, environment, instance)
            settings = fleet.tree.platform.model.spec.environments[environment]
            image = check_runtime_image(runtime_image, environment, settings) if runtime_image is not None else None
            return DeployRequest(
                instance=resolved,
                agents_dir=directory,
                dry_run=dry_run,
                runtime_image=image,
                timeout_seconds=check_timeout(timeout_seconds),
                region=settings.region,
            )

        request = await asyncio.to_thread(prepare)
        resolved = request.instance
        lines = 0

        async def progress(line: str, event: StackEvent | None) -> None:
            nonlocal lines
            lines += 1
            if not line.strip():
                return
            await ctx.report_progress(lines, None, line)
            await _log(ctx, line, "cdk")

        verb = "dry-run (synth + diff)" if dry_run else "deploy"
        await _log(ctx, f"starting {verb} of {resolved.key.selector} in {environment}", "foundry")
        result = await config.deployer.run(request, progress)
        return dataclasses.asdict(result)

    @server.tool(name="foundry.get_instance_status", annotations=read_only)
    @_checked
    async def get_instance_status(
        environment: str, instance: str, probe_instance: bool = True, agents_dir: str | None = None
    ) -> dict[str, Any]:
        """CloudFormation stack status, the ECS service's deployments (a circuit-breaker rollback shows as failed),
        load-balancer target health, and the instance's own `status` tool when its endpoint is reachable; also why
        this server holds the instance's deploy lock (deploy_lock) and the last deploy whose cdk was stopped
        (last_interrupted_deploy: how CloudFormation ended it)."""

        def prepare() -> tuple[ResolvedInstance, str]:
            fleet, _ = _fleet(config, agents_dir)
            resolved = find_instance(fleet, environment, instance)
            return resolved, fleet.tree.platform.model.spec.environments[environment].region

        resolved, region = await asyncio.to_thread(prepare)
        status = await instance_status(
            resolved, region=region, clients=config.clients, probe=config.probe if probe_instance else None
        )
        interrupted = await asyncio.to_thread(config.deployer.last_interruption, resolved)
        return {
            **dataclasses.asdict(status),
            "deploy_lock": config.deployer.lock_reason(resolved),
            "last_interrupted_deploy": dataclasses.asdict(interrupted) if interrupted else None,
        }

    # Rollouts (issue 15): a separate, read-only registration.
    register_rollout_status(server, config.repo_root / "build" / "rollouts")
    return server
