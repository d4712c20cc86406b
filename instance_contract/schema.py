"""The models the instance runtime reads from its bundle: the resolved instance manifest (kind: AgentInstance)
and agent specs (kind: AgentSpec), with the value types they share with the files people write.

The Foundry writes these documents and the runtime reads them, so both import this module; it depends on pydantic
alone. Unknown keys are rejected everywhere: a typo must fail, not be ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from instance_contract.off_hours import OffHoursSchedule

API_VERSION = "agent-foundry/v1"

DNS_LABEL_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
SECRET_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"  # noqa: S105 - a name pattern, not a secret

DnsId = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN)]
SemVer = Annotated[str, StringConstraints(pattern=SEMVER_PATTERN)]
SecretName = Annotated[str, StringConstraints(pattern=SECRET_NAME_PATTERN)]
BackendTool = Literal["model_generate", "memory_read", "memory_append", "context_get"]
"""Tools of the instance's backend MCP server: the only way agents reach models and stores."""
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
MCP_SERVER_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
McpServerName = Annotated[str, StringConstraints(pattern=MCP_SERVER_NAME_PATTERN)]
"""An external MCP server's name: its tools appear to agents as `<name>.<tool>`."""
EXTERNAL_TOOL_PATTERN = r"^[a-z][a-z0-9_]{0,39}\.[A-Za-z0-9_-]{1,64}$"
ExternalToolName = Annotated[str, StringConstraints(pattern=EXTERNAL_TOOL_PATTERN)]
"""`<server>.<tool>`: a tool of an external MCP server declared in the instance template's `mcp.servers`."""
APPROVAL_PATTERN = r"^[a-z][a-z0-9_]{0,39}\.([A-Za-z0-9_-]{1,64}|\*)$"
ApprovalPattern = Annotated[str, StringConstraints(pattern=APPROVAL_PATTERN)]
"""`<server>.<tool>` or `<server>.*`: external tools whose calls wait for a person's approval."""
MAX_APPROVAL_TIMEOUT_SECONDS = 7 * 86_400
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

SystemRole = Literal["io", "governance", "context", "supervisor", "coherence", "exception", "observability"]
AgentRole = Literal["io", "governance", "context", "supervisor", "coherence", "exception", "observability", "worker"]
SYSTEM_ROLES: tuple[SystemRole, ...] = (
    "io",
    "governance",
    "context",
    "supervisor",
    "coherence",
    "exception",
    "observability",
)


class Strict(BaseModel):
    """Base for every file people write: unknown keys are an error, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- Shared by the template and the instance manifest ---------------------------------------------------


LifecycleState = Literal["active", "paused"]
"""`paused`: no task runs and the listener rule answers 503; data, secrets, logs and DNS name are kept."""


class DeploySettings(Strict):
    """Fargate sizing and scaling of one instance, and its lifecycle. CPU/memory must be a valid Fargate pair."""

    cpu: Literal[256, 512, 1024, 2048, 4096]
    memory: Annotated[int, Field(ge=512, le=30720)]
    min_tasks: Annotated[int, Field(ge=1, le=100)]
    max_tasks: Annotated[int, Field(ge=1, le=100)]
    cpu_target_percent: Annotated[int, Field(ge=10, le=95)] = 60
    state: LifecycleState = "active"
    schedule: OffHoursSchedule | None = None
    """Off-hours: scheduled actions that scale the service to 0 at `stop` and back at `start`."""

    @model_serializer(mode="wrap")
    def _omit_lifecycle_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """An active instance without a schedule serialises as before lifecycle settings existed (same bundle)."""
        data: dict[str, Any] = handler(self)
        if self.state == "active":
            data.pop("state", None)
        if self.schedule is None:
            data.pop("schedule", None)
        return data

    @model_validator(mode="after")
    def _check(self) -> DeploySettings:
        if self.max_tasks < self.min_tasks:
            raise ValueError(f"max_tasks ({self.max_tasks}) is below min_tasks ({self.min_tasks})")
        allowed = FARGATE_MEMORY[self.cpu]
        if self.memory not in allowed:
            raise ValueError(
                f"memory {self.memory} is not valid with cpu {self.cpu}; allowed: {', '.join(str(m) for m in allowed)}"
            )
        return self


FARGATE_MEMORY: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: (1024, 2048, 3072, 4096),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}


class RequestLimits(Strict):
    """The limits every request of an instance runs under. One set, read by every part that enforces them: the
    governance agent refuses a longer message, the backend memory stores messages up to the same length, and the
    runtime ends a request that runs past the time limit with the exception agent's structured error."""

    max_input_chars: Annotated[int, Field(ge=1, le=1_000_000)] = 8000
    """Longest request message (after Unicode NFC normalisation and trimming) the instance accepts."""
    request_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 50.0
    """Time limit of one request through the graph. Keep it below the load balancer's idle timeout (60 s by
    default), so the caller gets the structured error rather than the load balancer's 504."""


class ExternalMcpServer(Strict):
    """An MCP server outside the instance (streamable HTTP) whose tools agents may use through the backend.
    Only the secret's name is here; its value reaches the task as SECRET_<NAME> and is sent as a bearer token."""

    name: McpServerName
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    bearer_secret: SecretName | None = None
    """One of the instance's secret names (the template's `secrets` or an agent spec's)."""
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    """Time limit of one tool call (connecting, listing and calling)."""
    max_response_bytes: Annotated[int, Field(ge=1, le=10_000_000)] = 1_000_000
    """Largest tool result (its content as JSON) the backend passes on to an agent. The answer's transfer stops
    as soon as it is past this (plus a small allowance for the JSON-RPC envelope), so memory stays bounded."""
    max_listing_bytes: Annotated[int, Field(ge=1, le=10_000_000)] = 1_000_000
    """Largest tool listing (tools/list answer) the backend reads; past it the server's tools are unavailable."""

    @field_validator("url")
    @classmethod
    def _https_outside_loopback(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL with a host")
        if parts.username or parts.password:
            raise ValueError(f"{url!r} carries credentials; name the instance's secret in bearer_secret instead")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            raise ValueError(
                f"{url!r} is plain http; an external MCP server must use https (plain http is allowed only to "
                f"a loopback host: {', '.join(sorted(LOOPBACK_HOSTS))})"
            )
        return url


def unique_server_names(servers: list[ExternalMcpServer]) -> list[ExternalMcpServer]:
    names = [s.name for s in servers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"server name {', '.join(duplicates)} is declared twice; each name is one tool namespace")
    return servers


class McpToolConfig(Strict):
    """How the instance's backend MCP server reaches models, memory and external MCP servers. No credentials here,
    ever: a server names the secret that holds its token."""

    model_provider: Literal["offline", "bedrock"] = "offline"
    bedrock_model_id: NonEmpty | None = None
    bedrock_region: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] | None = None
    memory_store: Literal["thread-state"] = "thread-state"
    """The backend's memory tools keep history in the instance's thread state: the store the runtime's STATE_URL
    names (its own DynamoDB table on AWS, a SQLite file locally), shared by all of its tasks."""
    max_history_messages: Annotated[int, Field(ge=0, le=1000)] = 20
    thread_ttl_hours: Annotated[int, Field(ge=1, le=87_600)] = 720
    """A thread idle for longer than this is forgotten (DynamoDB's TTL attribute; the SQLite store sweeps)."""
    servers: list[ExternalMcpServer] = Field(default_factory=list)
    """External MCP servers; their tools appear to agents as `<server>.<tool>`."""
    on_busy: Literal["enqueue", "reject", "interrupt"] = "enqueue"
    """A message for a thread whose previous turn still runs, on any task: `enqueue` waits for it (up to the
    runtime's THREAD_WAIT_SECONDS), `reject` answers thread_busy at once, `interrupt` stops the running turn (nothing
    of it is recorded; its caller gets `interrupted`) and runs the new one."""

    @field_validator("servers")
    @classmethod
    def _unique(cls, servers: list[ExternalMcpServer]) -> list[ExternalMcpServer]:
        return unique_server_names(servers)

    @model_validator(mode="after")
    def _check(self) -> McpToolConfig:
        if self.model_provider == "bedrock" and not self.bedrock_model_id:
            raise ValueError("model_provider 'bedrock' needs bedrock_model_id")
        return self

    @model_serializer(mode="wrap")
    def _omit_later_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """An instance without external servers, and one that queues busy turns, serialises as before those
        settings existed (same bundle bytes)."""
        data: dict[str, Any] = handler(self)
        if not self.servers:
            data.pop("servers", None)
        if self.on_busy == "enqueue":
            data.pop("on_busy", None)
        return data


# --- Agent spec (kind: AgentSpec) -------------------------------------------------------------------------


class ModelSettings(Strict):
    provider: Literal["offline", "bedrock", "inherit"] = "inherit"
    model_id: NonEmpty | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0
    max_tokens: Annotated[int, Field(ge=1, le=200_000)] = 512


class GovernancePolicy(Strict):
    """The input policy the governance agent enforces before anything else runs."""

    max_input_chars: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    """Only to be stricter than the instance's `limits.max_input_chars` (which applies when this is left out)."""
    blocked_patterns: list[NonEmpty] = Field(default_factory=list)
    blocked_tenants: list[DnsId] = Field(default_factory=list)
    approval_required: list[ApprovalPattern] = Field(default_factory=list)
    """External tools (`<server>.<tool>`, or `<server>.*` for all of a server's tools) whose every call waits for a
    person's decision: the worker's turn pauses before the call until someone approves or rejects it."""
    approval_timeout_seconds: Annotated[int, Field(ge=60, le=MAX_APPROVAL_TIMEOUT_SECONDS)] = 3600
    """How long a pending approval can be decided; after that it is expired and the paused turn never resumes."""

    @field_validator("approval_required")
    @classmethod
    def _unique_approvals(cls, patterns: list[str]) -> list[str]:
        repeated = sorted({p for p in patterns if patterns.count(p) > 1})
        if repeated:
            raise ValueError(f"approval_required names {', '.join(map(repr, repeated))} more than once")
        return patterns

    @field_validator("blocked_patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"blocked pattern {pattern!r} is not a valid regular expression: {exc}") from exc
        return patterns


class WorkerRouting(Strict):
    """What the supervisor routes to this worker: any keyword found in the message selects it."""

    description: NonEmpty
    keywords: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(min_length=1)
    default: bool = False


class AgentSpecBody(Strict):
    role: AgentRole
    description: NonEmpty
    model: ModelSettings = Field(default_factory=ModelSettings)
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
    tools: list[BackendTool | ExternalToolName] = Field(default_factory=list)
    """Backend tools and external `<server>.<tool>` tools this agent may call; the gateway refuses any other."""
    max_tool_steps: Annotated[int, Field(ge=1, le=20)] = 4
    """A worker's tool loop: at most this many rounds of model -> tool calls before it must answer."""
    routing: WorkerRouting | None = None
    policy: GovernancePolicy | None = None
    secrets: list[SecretName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> AgentSpecBody:
        if self.role == "worker" and self.routing is None:
            raise ValueError("a worker needs routing (description and keywords) so the supervisor can reach it")
        if self.role != "worker" and self.routing is not None:
            raise ValueError(f"routing is only for workers, not for role {self.role!r}")
        if self.policy is not None and self.role != "governance":
            raise ValueError(f"policy is only for the governance agent, not for role {self.role!r}")
        return self


class AgentSpecMetadata(Strict):
    agent_id: DnsId
    version: SemVer


class AgentSpec(Strict):
    apiVersion: Literal["agent-foundry/v1"]  # noqa: N815
    kind: Literal["AgentSpec"]
    metadata: AgentSpecMetadata
    spec: AgentSpecBody


# --- Concrete instance manifest (kind: AgentInstance), produced by resolution ------------------------------


class InstanceKey(tuple[str, str, str]):
    """(organization_id, domain_id, instance_id): the identity of an instance within one environment."""

    def __new__(cls, organization_id: str, domain_id: str, instance_id: str) -> InstanceKey:
        return super().__new__(cls, (organization_id, domain_id, instance_id))

    @property
    def organization_id(self) -> str:
        return self[0]

    @property
    def domain_id(self) -> str:
        return self[1]

    @property
    def instance_id(self) -> str:
        return self[2]

    @property
    def selector(self) -> str:
        return f"{self[0]}/{self[1]}/{self[2]}"


class InstanceIdentity(Strict):
    organization_id: DnsId
    organization_name: NonEmpty
    domain_id: DnsId
    domain_name: NonEmpty
    environment: DnsId
    instance_id: DnsId

    @property
    def key(self) -> InstanceKey:
        return InstanceKey(self.organization_id, self.domain_id, self.instance_id)


class InstanceAgent(Strict):
    agent_id: DnsId
    role: AgentRole
    version: SemVer
    spec_path: NonEmpty
    """Path of the agent spec inside the bundle (and relative to `agents/` in the repo)."""


class EgressSettings(Strict):
    """Where the instance's backend may connect (instance_contract.egress). Set per environment in
    agents/platform.yaml and carried into every instance manifest of that environment."""

    allow_private_targets: bool = False
    """Only for local development and tests: external MCP servers on loopback (plain http too) and private
    addresses. Link-local addresses and the instance's own port stay refused."""


class InstanceSpec(Strict):
    identity: InstanceIdentity
    hostname: NonEmpty
    stack_name: NonEmpty
    system_agents: list[InstanceAgent]
    custom_agents: list[InstanceAgent]
    deploy: DeploySettings
    secrets: list[SecretName]
    mcp: McpToolConfig
    limits: RequestLimits = RequestLimits()
    egress: EgressSettings = EgressSettings()

    @model_serializer(mode="wrap")
    def _omit_default_egress(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """An instance of an environment without egress settings serialises as before they existed."""
        data: dict[str, Any] = handler(self)
        if self.egress == EgressSettings():
            data.pop("egress", None)
        return data

    @property
    def agents(self) -> list[InstanceAgent]:
        return [*self.system_agents, *self.custom_agents]


class InstanceMetadata(Strict):
    name: NonEmpty
    source_manifest: NonEmpty
    template: NonEmpty
    manifest_version: SemVer
    template_version: SemVer


class AgentInstance(Strict):
    apiVersion: Literal["agent-foundry/v1"]  # noqa: N815
    kind: Literal["AgentInstance"]
    metadata: InstanceMetadata
    spec: InstanceSpec
