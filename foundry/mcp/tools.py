"""The Foundry MCP tools, thin by design: each checks its arguments (`foundry.deploy.arguments`), calls one function of
the core and returns its typed result. The result's pydantic model is what the SDK publishes as the tool's output
schema, and its docstring here is the tool's description.

The tools are methods of `FoundryTools` only to share one server's configuration; `foundry.mcp.server` registers
each under its `foundry.` name.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPDeprecationWarning

from foundry.aws.clients import ClientFactory
from foundry.aws.instance_status import InstanceProbe
from foundry.cdk.output import StackEvent
from foundry.deploy.arguments import (
    ToolArgumentError,
    check_environment,
    check_id,
    check_instance_filter,
    check_repo_path,
    check_runtime_image,
    check_timeout,
    find_instance,
)
from foundry.deploy.deployer import Deployer
from foundry.deploy.locks import DeployRefusedError
from foundry.deploy.request import DEFAULT_TIMEOUT_SECONDS, DeployRequest
from foundry.deploy.status import deployed_status
from foundry.deploy.subject_data import SubjectAction, SubjectDataRefusedError, SubjectDataReport, subject_data
from foundry.fleet import catalog
from foundry.fleet.catalog import AgentConfig, AgentList, InstanceList, UnknownAgentError
from foundry.fleet.load import load_fleet
from foundry.fleet.model import Fleet
from foundry.manifests.problems import ManifestError
from foundry.manifests.resolve import ResolvedInstance
from foundry.mcp.results import DeployInstanceResult, InstanceStatusResult
from foundry.rollout.state import RolloutConflictError, RolloutStore
from foundry.rollout.status import RolloutStatusReport, rollout_status
from foundry.state.store import StateStoreError
from foundry.usage.collect import UsageAsk, instance_usage
from foundry.usage.model import InstanceUsage
from instance_contract.usage import UsageWindowError, usage_window

REFUSALS = (
    ToolArgumentError,
    UnknownAgentError,
    DeployRefusedError,
    RolloutConflictError,
    SubjectDataRefusedError,
)
"""What a tool answers with a tool error whose text is the refusal (anything else is a crash, its text kept on the
server)."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclass
class FoundryConfig:
    repo_root: Path
    agents_dir: Path
    """The default agents tree; a tool's `agents_dir` argument may pick another one inside the repository."""
    deployer: Deployer
    clients: ClientFactory
    probe: InstanceProbe | None


def refusals_as_tool_errors(fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
    """Turns a refused argument (or request) into a tool error whose text is the refusal."""

    @functools.wraps(fn)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await fn(*args, **kwargs)
        except REFUSALS as exc:
            raise ToolError(str(exc)) from exc

    return wrapper


async def _log(ctx: Context, line: str, logger_name: str) -> None:
    """Log notifications are deprecated from protocol 2026-07-28 (SEP-2577; sent there only to clients that opt
    in), but handshake-era clients (today's editors and desktop apps) show them: send both them and progress."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await ctx.log("info", line, logger_name=logger_name)


@dataclass(frozen=True)
class FoundryTools:
    """The six tools of one server. Argument names, types and defaults are the tools' input schemas, and the
    docstrings their descriptions: clients depend on both."""

    config: FoundryConfig
    """Read on every call (tests and the server may point it at another agents tree or AWS)."""

    def _fleet(self, agents_dir: str | None) -> tuple[Fleet, Path]:
        """The fleet of the default agents tree, or of `agents_dir` (a directory inside the repository)."""
        config = self.config
        directory = (
            config.agents_dir if agents_dir is None else check_repo_path("agents_dir", agents_dir, config.repo_root)
        )
        try:
            return load_fleet(directory), directory
        except ManifestError as exc:
            raise ToolError(str(exc)) from exc

    @refusals_as_tool_errors
    async def list_agents(
        self,
        organization: str | None = None,
        domain: str | None = None,
        environment: str | None = None,
        instance: str | None = None,
        agents_dir: str | None = None,
    ) -> AgentList:
        """Every agent bound to an instance, from the manifests; filter by organization, domain, environment and
        instance (an instance id, or ORG/DOMAIN/INSTANCE)."""

        def work() -> AgentList:
            fleet, _ = self._fleet(agents_dir)
            if environment is not None:
                check_environment(fleet, environment)
            for name, value in (("organization", organization), ("domain", domain)):
                if value is not None:
                    check_id(name, value)
            if instance is not None:
                check_instance_filter(instance)
            return catalog.list_agents(
                fleet, organization=organization, domain=domain, environment=environment, instance=instance
            )

        return await asyncio.to_thread(work)

    @refusals_as_tool_errors
    async def get_agent_config(
        self, agent_id: str, environment: str | None = None, agents_dir: str | None = None
    ) -> AgentConfig:
        """An agent's spec (as validated) and every (environment, instance) it is bound to, with the external MCP
        tools it may use there and the server each comes from (servers may differ per tenant)."""

        def work() -> AgentConfig:
            fleet, directory = self._fleet(agents_dir)
            check_id("agent_id", agent_id)
            if environment is not None:
                check_environment(fleet, environment)
            return catalog.agent_config(
                fleet, agent_id, agents_dir=directory, repo_root=self.config.repo_root, environment=environment
            )

        return await asyncio.to_thread(work)

    @refusals_as_tool_errors
    async def list_instances(self, environment: str | None = None, agents_dir: str | None = None) -> InstanceList:
        """Every (organization, domain, environment, instance) with its hostname, stack name and bundle hash."""

        def work() -> InstanceList:
            fleet, _ = self._fleet(agents_dir)
            if environment is not None:
                check_environment(fleet, environment)
            return catalog.list_instances(fleet, environment=environment)

        return await asyncio.to_thread(work)

    @refusals_as_tool_errors
    async def deploy_instance(
        self,
        environment: str,
        instance: str,
        ctx: Context,
        dry_run: bool = False,
        runtime_image: str | None = None,
        timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
        agents_dir: str | None = None,
    ) -> DeployInstanceResult:
        """Deploy one instance (ORG/DOMAIN/INSTANCE in ENVIRONMENT) with `cdk deploy`, streaming cdk's progress.
        dry_run: synthesize only that instance's stacks and diff them against what is deployed, change nothing.
        runtime_image: a prebuilt runtime image URI (REGISTRY/REPO:TAG or @sha256:...) instead of building one,
        from a repository the environment allows (agents/platform.yaml; by default its own ECR registry).
        Deploys only the instance's stack: a missing or out-of-date platform stack is reported, not deployed.
        One deploy per instance at a time: a second request while one runs (or while CloudFormation still works on
        the stack of a stopped one) is refused."""

        def prepare() -> DeployRequest:
            fleet, directory = self._fleet(agents_dir)
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
        lines = 0

        async def progress(line: str, event: StackEvent | None) -> None:
            """Every line cdk prints is a progress step; a non-blank one is also sent as a log line."""
            nonlocal lines
            lines += 1
            if not line.strip():
                return
            await ctx.report_progress(lines, None, line)
            await _log(ctx, line, "cdk")

        verb = "dry-run (synth + diff)" if dry_run else "deploy"
        await _log(ctx, f"starting {verb} of {request.instance.key.selector} in {environment}", "foundry")
        return DeployInstanceResult.of(await self.config.deployer.run(request, progress))

    @refusals_as_tool_errors
    async def get_instance_status(
        self, environment: str, instance: str, probe_instance: bool = True, agents_dir: str | None = None
    ) -> InstanceStatusResult:
        """CloudFormation stack status, the ECS service's deployments (a circuit-breaker rollback shows as failed),
        load-balancer target health, the instance's CloudWatch alarms (their states) and its last hour's requests,
        error rate, p95 turn duration and tokens, and the instance's own `status` tool when its endpoint is
        reachable; also who holds the instance's deploy lock and why (deploy_lock: this server, a rollout, another
        server) and the last deploy whose cdk was stopped (last_interrupted_deploy: how CloudFormation ended it)."""

        def prepare() -> tuple[ResolvedInstance, str]:
            fleet, _ = self._fleet(agents_dir)
            resolved = find_instance(fleet, environment, instance)
            return resolved, fleet.tree.platform.model.spec.environments[environment].region

        resolved, region = await asyncio.to_thread(prepare)
        config = self.config
        probe = config.probe if probe_instance else None
        report = await deployed_status(config.deployer, resolved, region=region, clients=config.clients, probe=probe)
        return InstanceStatusResult.of(report)

    @refusals_as_tool_errors
    async def export_subject_data(
        self,
        environment: str,
        instance: str,
        subject: str,
        instance_token: str,
        thread_id: str | None = None,
        agents_dir: str | None = None,
    ) -> SubjectDataReport:
        """Data-subject access: every thread the instance keeps of one subject of its organization (or one thread),
        with the subject's own thread ids and history, asked of the instance's own `export_subject_data` tool
        over its MCP endpoint (never its table). instance_token: your bearer token for that instance with the
        agentfoundry/admin scope; passed through on this call only, never kept."""
        return await self._subject_data("export", environment, instance, subject, instance_token, thread_id, agents_dir)

    @refusals_as_tool_errors
    async def erase_subject_data(
        self,
        environment: str,
        instance: str,
        subject: str,
        instance_token: str,
        thread_id: str | None = None,
        agents_dir: str | None = None,
    ) -> SubjectDataReport:
        """Data-subject erasure: the instance deletes every thread of one subject of its organization (or one
        thread: history, checkpoints, thread records) through its own `erase_subject_data` tool and answers how
        many it erased; nothing to erase is an error. instance_token: as for foundry.export_subject_data."""
        return await self._subject_data("erase", environment, instance, subject, instance_token, thread_id, agents_dir)

    async def _subject_data(
        self,
        action: SubjectAction,
        environment: str,
        instance: str,
        subject: str,
        token: str,
        thread_id: str | None,
        agents_dir: str | None,
    ) -> SubjectDataReport:
        if not subject.strip() or len(subject) > 256:
            raise ToolArgumentError(f"subject must be 1-256 characters, got {len(subject)}")
        if not token.strip():
            raise ToolArgumentError("instance_token is empty: an operator's token for the instance is needed")

        def prepare() -> tuple[ResolvedInstance, str]:
            fleet, _ = self._fleet(agents_dir)
            resolved = find_instance(fleet, environment, instance)
            return resolved, fleet.tree.platform.model.spec.environments[environment].region

        resolved, region = await asyncio.to_thread(prepare)
        return await subject_data(
            resolved,
            action,
            subject=subject,
            thread_id=thread_id,
            token=token.strip(),
            region=region,
            clients=self.config.clients,
        )

    @refusals_as_tool_errors
    async def get_instance_usage(
        self,
        environment: str,
        instance: str,
        since: str | None = None,
        until: str | None = None,
        instance_token: str | None = None,
        agents_dir: str | None = None,
    ) -> InstanceUsage:
        """What one instance used over a window and what it cost: requests by outcome, tokens per model, tool calls,
        compute hours (ECS Container Insights, else the template's minimum as a stated estimate) and the cost at
        agents/platform.yaml's prices, asked of the instance's own `usage` tool over its MCP endpoint (never its
        store). since/until: ISO dates or date-times, UTC (a date as until includes that day); default the current
        UTC month. instance_token: your bearer token for that instance with agentfoundry/read, when its environment
        checks tokens; passed through on this call only, never kept. An instance that does not answer is a result
        whose status says so (unreachable, refused, not_deployed), not an error."""
        if instance_token is not None and not instance_token.strip():
            raise ToolArgumentError("instance_token is empty: leave it out, or pass a token for the instance")
        try:
            window = usage_window(since, until, now=datetime.datetime.now(datetime.UTC))
        except UsageWindowError as exc:
            raise ToolArgumentError(str(exc)) from exc

        def prepare() -> tuple[ResolvedInstance, Fleet]:
            fleet, _ = self._fleet(agents_dir)
            return find_instance(fleet, environment, instance), fleet

        resolved, fleet = await asyncio.to_thread(prepare)
        spec = fleet.tree.platform.model.spec
        tokens = {resolved.key.selector: instance_token.strip()} if instance_token else {}
        return await instance_usage(
            resolved,
            window,
            UsageAsk(tokens=tokens),
            self.config.clients,
            settings=spec.environments[environment],
            pricing=spec.pricing,
        )

    @refusals_as_tool_errors
    async def get_rollout_status(self, environment: str | None = None, simulated: bool = False) -> RolloutStatusReport:
        """The last rollout of an environment (`python -m foundry rollout`): status (running, halted, complete,
        interrupted), its waves, and every instance as deployed, failed (with the reason), rolled_back or
        not_started. Without an environment: one line per environment. simulated: read the `--simulate` runs kept
        with --simulate-keep-state. Read from the environment's deploy state, wherever the rollout ran."""
        if environment is not None:
            check_id("environment", environment)

        def work() -> RolloutStatusReport:
            fleet, _ = self._fleet(None)
            settings = fleet.tree.platform.model.spec.environments
            stores = self.config.deployer.locks.stores

            def store_of(name: str) -> RolloutStore:
                region = settings[name].region if name in settings else None
                return RolloutStore(stores.open(name, region), simulated=simulated)

            try:
                return rollout_status(store_of, sorted(settings), environment)
            except StateStoreError as exc:
                raise RolloutConflictError(str(exc)) from exc

        return await asyncio.to_thread(work)
