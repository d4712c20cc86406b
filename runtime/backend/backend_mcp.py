"""The instance's backend MCP server: the only code that talks to models, stores and external MCP servers.

Agents never call a provider, the memory or an external server directly; they hold a ToolGateway that calls this
server through the SDK's in-process client connection and may only use the tools their spec lists (mcp.json
`agents`). External servers' tools are re-exposed here namespaced (`ticketing.create_ticket`,
runtime.backend.external_mcp).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.dispatcher import ProgressFnT
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, Field

from instance_contract.model_choice import AgentModel, agent_model
from runtime.backend.egress_http import EgressPolicy
from runtime.backend.external_mcp import ExternalServers, ExternalToolError, split_tool_name
from runtime.backend.providers import (
    BedrockProvider,
    ModelProvider,
    ModelReply,
    ModelRequest,
    OfflineProvider,
    ProviderError,
    TextSink,
    ToolCall,
    ToolSpec,
    ToolStep,
)
from runtime.bundle_source import InstanceBundle
from runtime.config import OfflineModelSettings, Secrets
from runtime.store.memory import StoredMessage, ThreadMemory
from runtime.telemetry.genai_spans import (
    AGENT_NAME,
    OPERATION,
    TOOL_NAME,
    as_json,
    fail,
    provider_name,
    span,
    system_instructions,
    text_messages,
)
from runtime.telemetry.instruments import InstanceTelemetry
from runtime.telemetry.turn_progress import TURN_PROGRESS
from runtime.telemetry.usage_tally import MODEL_TOOL, TURN_TALLY


class MemoryMessage(BaseModel):
    role: str = Field(pattern=r"^(user|assistant|system)$")
    content: str = Field(max_length=1_000_000)
    """The schema's ceiling is the largest limit a manifest may set; the instance's own limit
    (limits.max_input_chars, the same one governance enforces) is checked by memory_append."""


class ToolDescription(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any]


class ToolCallRequest(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any]


class ToolRound(BaseModel):
    """One earlier round of an agent's tool loop: the calls and their results, in the same order."""

    calls: list[ToolCallRequest]
    results: list[str]


class Generated(BaseModel):
    text: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    tool_calls: list[ToolCallRequest] = Field(default_factory=list)
    """Non-empty: the model asks for these tools before it answers."""


class ExternalToolResult(BaseModel):
    """What an external tool returned, as the backend passes it on: its text and, if any, structured data."""

    text: str
    data: dict[str, Any] | None


class MemoryRead(BaseModel):
    thread_id: str
    messages: list[MemoryMessage]


class MemoryAppended(BaseModel):
    thread_id: str
    stored: int


class InstanceContext(BaseModel):
    instance: str
    organization_id: str
    organization_name: str
    domain_id: str
    domain_name: str
    environment: str
    instance_id: str
    hostname: str
    workers: list[str]
    secrets_configured: list[str]
    """Names only: a secret's value never leaves the backend."""


class ToolCallError(RuntimeError):
    """A backend tool failed or was not allowed; raised inside an agent, so the exception agent handles it."""


@dataclass(frozen=True)
class AgentModelRoute:
    """The provider that serves one agent and the model it asks for (instance_contract.model_choice decides)."""

    provider: ModelProvider
    model: AgentModel


def providers_for(
    bundle: InstanceBundle, *, offline: OfflineModelSettings, region: str | None
) -> dict[str, AgentModelRoute]:
    """One route per agent_id: its own `model.provider` and `model.model_id` win over the instance's."""
    instance_mcp = bundle.instance.spec.mcp
    offline_provider = OfflineProvider(offline)
    bedrock: BedrockProvider | None = None
    chosen: dict[str, AgentModelRoute] = {}
    for agent_id, spec in sorted(bundle.specs.items()):
        model = agent_model(agent_id, spec.spec.model, instance_mcp)
        if model.provider == "offline":
            chosen[agent_id] = AgentModelRoute(offline_provider, model)
            continue
        if bedrock is None:
            bedrock = BedrockProvider.from_region(
                region=model.region or region, default_model_id=instance_mcp.bedrock_model_id or str(model.model_id)
            )
        chosen[agent_id] = AgentModelRoute(bedrock, model)
    return chosen


SDK_SPAN_MIDDLEWARE = "OpenTelemetryMiddleware"
"""The MCP SDK's default server middleware that opens one span per request."""


class BackendServer(MCPServer):
    """The SDK's server, with the external servers' tools listed and called beside its own."""

    def __init__(self, name: str, external: ExternalServers) -> None:
        super().__init__(name, log_level="WARNING")
        self.external = external
        # In-process: every call already has its `execute_tool` span (ToolGateway.call), whose context the
        # in-process transport carries into the handler; the SDK's server span per call would only double it. Its
        # middleware class lives in a private module (mcp.server._otel), so it is matched by name, not imported.
        self.middleware[:] = [m for m in self.middleware if type(m).__name__ != SDK_SPAN_MIDDLEWARE]

    async def list_tools(self) -> list[types.Tool]:
        own = await super().list_tools()
        found = await self.external.all_tools()
        return [
            *own,
            *(types.Tool(name=t.name, description=t.description, input_schema=t.input_schema) for t in found),
        ]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> types.CallToolResult | types.InputRequiredResult:
        if not self.external.owns(name):
            return await super().call_tool(name, arguments, context)
        try:
            result = await self.external.call(name, arguments)
        except ExternalToolError as exc:
            raise ToolError(str(exc)) from None
        structured = ExternalToolResult(text=result.text, data=result.data).model_dump(mode="json")
        return types.CallToolResult(content=[types.TextContent(text=result.text)], structured_content=structured)


def build_backend_server(
    *,
    bundle: InstanceBundle,
    providers: dict[str, AgentModelRoute],
    memory: Callable[[], ThreadMemory],
    secrets: Secrets,
    egress: EgressPolicy | None = None,
    telemetry: InstanceTelemetry | None = None,
) -> BackendServer:
    """`memory` returns the instance's thread memory, which is opened (async) after the server is built. `egress`
    (default: the bundle's setting, serving on no port) is where external MCP servers may be reached."""
    if egress is None:
        egress = EgressPolicy(allow_private_targets=bundle.instance.spec.egress.allow_private_targets)
    observed = telemetry or InstanceTelemetry.off()
    server = BackendServer(bundle.mcp.server.name, ExternalServers(bundle.instance.spec.mcp.servers, secrets, egress))
    identity = bundle.instance.spec.identity
    limits = bundle.instance.spec.limits
    context = InstanceContext(
        instance=bundle.instance.metadata.name,
        organization_id=identity.organization_id,
        organization_name=identity.organization_name,
        domain_id=identity.domain_id,
        domain_name=identity.domain_name,
        environment=identity.environment,
        instance_id=identity.instance_id,
        hostname=bundle.instance.spec.hostname,
        workers=[w.agent_id for w in bundle.graph.workers],
        secrets_configured=list(secrets),
    )

    @server.tool()
    async def model_generate(
        agent_id: str,
        system: str,
        prompt: str,
        tools: list[ToolDescription] | None = None,
        rounds: list[ToolRound] | None = None,
        request: str = "",
        stream: bool = False,
        ctx: Context[Any, Any] | None = None,
    ) -> Generated:
        """Generate text for one agent with the model its spec configures. Given `tools`, the model may instead
        ask for tool calls; `rounds` are the earlier calls and their results; `request` is the caller's own words.
        With `stream`, the text is also reported as it is generated, each chunk one progress notification's message
        (the caller passes a progress callback); the result is the same."""
        spec = bundle.specs.get(agent_id)
        route = providers.get(agent_id)
        if spec is None or route is None:
            raise ToolError(f"unknown agent {agent_id!r}")
        settings = spec.spec.model
        model_request = ModelRequest(
            agent_id=agent_id,
            system=system,
            prompt=prompt,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            model_id=route.model.model_id,
            tools=tuple(ToolSpec(t.name, t.description, t.input_schema) for t in tools or []),
            steps=tuple(
                ToolStep(tuple(ToolCall(c.id, c.name, c.arguments) for c in r.calls), tuple(r.results))
                for r in rounds or []
            ),
            request_text=request,
        )
        on_text: TextSink | None = None
        if stream and ctx is not None:
            chunks = 0

            async def on_text(chunk: str) -> None:
                nonlocal chunks
                chunks += 1
                await ctx.report_progress(chunks, None, chunk)

        reply = await _chat(route.provider, model_request, observed, on_text)
        return Generated(
            text=reply.text,
            provider=reply.provider,
            model=reply.model,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            tool_calls=[ToolCallRequest(id=c.id, name=c.name, arguments=c.arguments) for c in reply.tool_calls],
        )

    @server.tool()
    async def memory_read(thread_id: str, limit: int = 20) -> MemoryRead:
        """The last `limit` messages of a thread, oldest first."""
        stored = await memory().read(thread_id, min(limit, bundle.instance.spec.mcp.max_history_messages))
        return MemoryRead(thread_id=thread_id, messages=[MemoryMessage(role=m.role, content=m.content) for m in stored])

    @server.tool()
    async def memory_append(thread_id: str, messages: list[MemoryMessage]) -> MemoryAppended:
        """Append messages to a thread; each at most the instance's input limit (limits.max_input_chars)."""
        too_long = [i for i, m in enumerate(messages) if len(m.content) > limits.max_input_chars]
        if too_long:
            raise ToolError(
                f"message {too_long[0]} has {len(messages[too_long[0]].content)} characters; this instance stores "
                f"at most {limits.max_input_chars} (limits.max_input_chars)"
            )
        count = await memory().append(thread_id, [StoredMessage(role=m.role, content=m.content) for m in messages])
        return MemoryAppended(thread_id=thread_id, stored=count)

    @server.tool()
    async def context_get() -> InstanceContext:
        """Facts about this instance that agents may use (identity, workers, secret names)."""
        return context

    return server


async def _chat(
    provider: ModelProvider, request: ModelRequest, telemetry: InstanceTelemetry, on_text: TextSink | None = None
) -> ModelReply:
    """One model call inside a `chat {model}` span, with its tokens and time recorded; a provider error becomes
    the tool's error."""
    model = request.model_id or provider.default_model
    system = provider_name(provider.name)
    attributes: dict[str, Any] = {
        OPERATION: "chat",
        "gen_ai.provider.name": system,
        "gen_ai.request.model": model,
        AGENT_NAME: request.agent_id,
        "gen_ai.request.max_tokens": request.max_tokens,
        "gen_ai.request.temperature": request.temperature,
    }
    if telemetry.capture_content:
        attributes["gen_ai.system_instructions"] = system_instructions(request.system)
        attributes["gen_ai.input.messages"] = text_messages("user", request.prompt)
    started = time.perf_counter()
    with span(f"chat {model}", attributes, SpanKind.CLIENT) as current:
        try:
            reply = await provider.generate(request, on_text)
        except ProviderError as exc:
            fail(current, type(exc).__name__)
            telemetry.metrics.model_call(
                provider=system, model=model, seconds=time.perf_counter() - started,
                input_tokens=0, output_tokens=0, error_type=type(exc).__name__,
            )  # fmt: skip
            raise ToolError(str(exc)) from None
        current.set_attributes(
            {
                "gen_ai.response.model": reply.model,
                "gen_ai.usage.input_tokens": reply.input_tokens,
                "gen_ai.usage.output_tokens": reply.output_tokens,
            }
        )
        if telemetry.capture_content:
            output: list[dict[str, Any]] = [{"type": "text", "content": reply.text}] if reply.text else []
            output += [
                {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments} for c in reply.tool_calls
            ]
            current.set_attribute("gen_ai.output.messages", as_json([{"role": "assistant", "parts": output}]))
    telemetry.metrics.model_call(
        provider=system, model=model, seconds=time.perf_counter() - started,
        input_tokens=reply.input_tokens, output_tokens=reply.output_tokens, error_type=None,
    )  # fmt: skip
    return reply


class BackendConnection:
    """One in-process MCP client session to the backend server, shared by every request of the process."""

    def __init__(
        self, server: BackendServer, allowed: dict[str, list[str]], telemetry: InstanceTelemetry | None = None
    ) -> None:
        self._server = server
        self.telemetry = telemetry or InstanceTelemetry.off()
        self._allowed = {agent: frozenset(tools) for agent, tools in allowed.items()}
        self._stack: AsyncExitStack | None = None
        self._client: Client | None = None

    async def open(self) -> None:
        self._stack = AsyncExitStack()
        self._client = await self._stack.enter_async_context(Client(self._server))

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack, self._client = None, None

    def gateway(self, agent_id: str) -> ToolGateway:
        return ToolGateway(self, agent_id, self._allowed.get(agent_id, frozenset()))

    async def call(self, name: str, arguments: dict[str, Any], on_progress: TextSink | None = None) -> dict[str, Any]:
        """`on_progress` receives the message of each progress notification the tool reports (the model's text
        chunks of a streaming `model_generate`), as the tool runs."""
        if self._client is None:
            raise ToolCallError("the backend MCP connection is not open")
        # `session.send_request` is the SDK's typed request API; unlike `call_tool` it does not re-validate the
        # structured result against the tool's output schema with jsonschema. The results come from this
        # process's own backend server, which builds them from the same pydantic models that define those
        # schemas, so the check could never fail here and was a third of a request's graph time.
        request = types.CallToolRequest(params=types.CallToolRequestParams(name=name, arguments=arguments))
        callback: ProgressFnT | None = None
        if on_progress is not None:
            sink = on_progress

            async def callback(progress: float, total: float | None, message: str | None) -> None:
                if message:
                    await sink(message)

        result = await self._client.session.send_request(request, types.CallToolResult, progress_callback=callback)
        if result.is_error:
            detail = " ".join(getattr(block, "text", "") for block in result.content).strip()
            kind = "external tool" if split_tool_name(name) else "backend tool"
            raise ToolCallError(f"{kind} {name} failed: {detail or 'no detail'}")
        return dict(result.structured_content or {})

    async def describe(self, names: list[str]) -> list[ToolDescription]:
        """The named external tools as the server lists them, in the order given; a tool of a server that cannot
        be listed is still described by name (calling it gives that server's error)."""
        external = self._server.external
        found: dict[str, ToolDescription] = {}
        for server in sorted({parts[0] for n in names if (parts := split_tool_name(n))}):
            try:
                listed = await external.tools(server)
            except ExternalToolError:
                continue
            found.update(
                {
                    t.name: ToolDescription(name=t.name, description=t.description, input_schema=t.input_schema)
                    for t in listed
                }
            )
        return [found.get(n) or ToolDescription(name=n, description="", input_schema={}) for n in names]


class ToolGateway:
    """What one agent may call. A tool outside its spec's `tools` list is refused before it is called."""

    def __init__(self, connection: BackendConnection, agent_id: str, allowed: frozenset[str]) -> None:
        self._connection = connection
        self.agent_id = agent_id
        self.allowed = allowed

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The call inside an `execute_tool {name}` span, counted by tool (a refused call counts as an error)."""
        external = split_tool_name(name) is not None
        telemetry = self._connection.telemetry
        attributes: dict[str, Any] = {
            OPERATION: "execute_tool",
            TOOL_NAME: name,
            "gen_ai.tool.type": "extension" if external else "function",
            AGENT_NAME: self.agent_id,
        }
        if telemetry.capture_content:
            attributes["gen_ai.tool.call.arguments"] = as_json(arguments)
        ok = False
        result: dict[str, Any] | None = None
        try:
            with span(f"execute_tool {name}", attributes) as current:
                if name not in self.allowed:
                    kind = "external tool" if external else "backend tool"
                    raise ToolCallError(f"agent {self.agent_id} may not call {kind} {name} (not in its spec's tools)")
                progress = TURN_PROGRESS.get() if name == MODEL_TOOL else None
                if progress is None:
                    result = await self._connection.call(name, arguments)
                else:  # the turn's caller streams: the model's text goes to it as it is generated
                    agent_id = self.agent_id

                    async def forward(chunk: str) -> None:
                        await progress.text(agent_id, chunk)

                    result = await self._connection.call(name, {**arguments, "stream": True}, forward)
                if telemetry.capture_content:
                    current.set_attribute("gen_ai.tool.call.result", as_json(result))
                ok = True
                return result
        finally:
            telemetry.metrics.tool_call(name, ok)
            if (tally := TURN_TALLY.get()) is not None:  # the turn's usage (runtime.telemetry.usage_tally)
                tally.note_gateway_call(name, ok, result)

    @property
    def external_tools(self) -> list[str]:
        """The external tools this agent may call, sorted."""
        return sorted(n for n in self.allowed if split_tool_name(n))

    async def describe_external(self, order: list[str]) -> list[ToolDescription]:
        """Descriptions of this agent's external tools, in the spec's order."""
        return await self._connection.describe([n for n in order if n in self.allowed and split_tool_name(n)])
