"""The instance's public surface: an MCP server (streamable HTTP at /mcp, or stdio) with the tools invoke,
describe, status and usage, plus plain GET /healthz, /readyz and /metrics for the load balancer and operators.

Stateless streamable HTTP with JSON responses: any task behind the load balancer can answer any request. The one
exception is a 2025-11-25 client that can be asked for an approval inline: it gets a session, kept on its task by
the load balancer's cookie stickiness (runtime.edge.sessions_http). SIGTERM flips the instance to draining (readyz
503, new invokes refused), lets in-flight requests finish, and exits 0 within DRAIN_SECONDS.

With AUTH_ISSUER set the instance is an OAuth 2.1 resource server (the MCP authorization specification): every /mcp
request carries a bearer JWT, checked by the SDK's bearer middleware with our verifier (runtime/auth.py,
oauth_resource/); `invoke` needs the agentfoundry/invoke scope, `describe`, `status`, `usage` and /metrics
agentfoundry/read, and the data-subject tools `export_subject_data` and `erase_subject_data` agentfoundry/admin
(operators' tokens only); /.well-known/oauth-protected-resource (RFC 9728) names the resource and its issuer. The
approval tools (runtime.approvals.policy): `approve` needs agentfoundry/approve, `pending_approvals` and
`get_approval` agentfoundry/read.
"""

from __future__ import annotations

import datetime
import gc
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from types import FrameType
from typing import Annotated, Any, Literal

import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, InputRequiredResult, TextContent
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from instance_contract.usage import UsageReport, UsageWindowError, usage_window
from runtime.approvals.policy import ApprovalError, ApprovalState
from runtime.auth import (
    ADMIN_SCOPE,
    APPROVE_SCOPE,
    INVOKE_SCOPE,
    READ_SCOPE,
    SUPPORTED_SCOPES,
    Caller,
    ResourceServer,
    ScopeError,
    caller_from_token,
    resource_server,
)
from runtime.edge.inline_approval import invoke_asking
from runtime.edge.mcp_routing import route_mcp_requests
from runtime.edge.progress_http import MCP_PATH, progress_reported, streaming_manager
from runtime.edge.sessions_http import session_manager
from runtime.instance import Instance, InvokeResult, SubjectDataResult, SubjectRequestError
from runtime.telemetry.provider import install_tracing, shutdown_tracing
from runtime.telemetry.trace_context import TraceContextMiddleware

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

log = logging.getLogger("runtime.server")
ApprovalId = Annotated[str, Field(min_length=1, max_length=100, description="The approval's id (apr-...).")]
MAX_MESSAGE_CHARS = 1_000_000
"""A hard ceiling before the graph runs; the governance policy sets the real (smaller) limit."""


def instance_resource_server(instance: Instance) -> ResourceServer | None:
    """None when AUTH_MODE=none (or stdio, where the launching process is the caller)."""
    if instance.config.auth.mode != "jwt":
        return None
    spec = instance.bundle.instance.spec
    return resource_server(instance.config.auth, organization=instance.organization, hostname=spec.hostname)


def build_mcp_server(instance: Instance, auth: ResourceServer | None = None) -> MCPServer:
    name = instance.bundle.instance.metadata.name
    server: MCPServer = MCPServer(
        name,
        instructions=f"Agent Foundry instance {name}: call `invoke` with a message and a thread id.",
        log_level="WARNING",
        token_verifier=auth.verifier if auth else None,
        auth=auth.settings if auth else None,
    )

    def caller(scope: str) -> Caller | None:
        """The token's caller, if it has `scope`; None without auth (the anonymous caller of AUTH_MODE=none)."""
        if auth is None:
            return None
        token = get_access_token()
        if token is None:  # the bearer middleware lets no request without a valid token reach a tool
            raise ToolError("unauthenticated: a bearer token is required")
        found = caller_from_token(token)
        try:
            found.require(scope)
        except ScopeError as exc:
            raise ToolError(str(exc)) from None
        return found

    @server.tool()
    async def invoke(
        message: Annotated[str, Field(max_length=MAX_MESSAGE_CHARS, description="The request text.")],
        thread_id: Annotated[
            str | None,
            Field(
                max_length=256,
                description="Conversation id (yours alone). Leave it out to start a new thread: the answer's "
                "thread_id names it, pass that to continue.",
            ),
        ] = None,
        ctx: Context[Any, Any] | None = None,
    ) -> Annotated[CallToolResult | InputRequiredResult, InvokeResult]:
        """Run the message through the instance's agents; returns the answer, its thread id and the per-node
        trace. A call that needs a person's approval pauses (status awaiting_approval), or asks the client's user
        inline where the client supports elicitation. With a progressToken, the turn streams: a progress
        notification as each node starts and the model's text as it is generated (docs/runtime.md, "Streaming")."""
        who = caller(INVOKE_SCOPE)
        try:
            with progress_reported(ctx):
                result = await invoke_asking(instance, message, thread_id, who, ctx)
        except ApprovalError as exc:  # only on the retry that answers an inline approval question
            raise ToolError(str(exc)) from None
        if isinstance(result, InputRequiredResult):
            return result
        payload = result.model_dump(mode="json")
        text = result.answer if result.ok and result.answer is not None else f"error: {result.error}"
        if result.approval is not None:
            a = result.approval
            text = f"awaiting approval {a.id}: {a.tool} needs a person's decision (approve) before {a.expires_at}"
        return CallToolResult(
            content=[TextContent(type="text", text=text or "")], structured_content=payload, is_error=not result.ok
        )

    @server.tool()
    async def describe() -> dict[str, Any]:
        """Identity, agents, workers and bundle hash of this instance."""
        caller(READ_SCOPE)
        return instance.describe()

    @server.tool()
    async def status() -> dict[str, Any]:
        """Health and metrics of this process."""
        caller(READ_SCOPE)
        return instance.status()

    @server.tool()
    async def usage(
        since: Annotated[
            str | None,
            Field(
                max_length=64,
                description="Start (ISO 8601 date or date-time, UTC unless it names a zone); default: the first of "
                "the current UTC month. Rounded down to the hour.",
            ),
        ] = None,
        until: Annotated[
            str | None,
            Field(
                max_length=64,
                description="End, exclusive (a date alone includes that whole day); default: the end of the "
                "current UTC month. Rounded up to the hour.",
            ),
        ] = None,
    ) -> UsageReport:
        """What this instance used over a window, from its usage ledger (every task, across restarts): requests by
        outcome, input and output tokens per model, tool calls per tool, turn durations."""
        caller(READ_SCOPE)
        try:
            window = usage_window(since, until, now=datetime.datetime.now(datetime.UTC))
        except UsageWindowError as exc:
            raise ToolError(str(exc)) from None
        return await instance.usage(window)

    if instance.approval_policy.active:
        _add_approval_tools(server, instance, caller)

    def admin() -> None:
        """The data-subject tools need an operator's token with agentfoundry/admin; an instance that checks no
        tokens (AUTH_MODE=none) offers them to nobody (`python -m runtime state` serves operators there)."""
        if auth is None:
            raise ToolError(
                "the data-subject tools need an operator's token with the agentfoundry/admin scope, and this "
                "instance checks no tokens (AUTH_MODE=none); use `python -m runtime state` on its store"
            )
        caller(ADMIN_SCOPE)

    @server.tool()
    async def export_subject_data(
        subject: Annotated[str, Field(min_length=1, max_length=256, description="The caller's subject (sub).")],
        thread_id: Annotated[
            str | None, Field(max_length=128, description="Only this thread of the subject (its own thread id).")
        ] = None,
    ) -> SubjectDataResult:
        """Data-subject access: every thread this instance keeps of one subject of its organization (or one of
        them), with the subject's own thread ids and the kept history. Needs the agentfoundry/admin scope."""
        admin()
        try:
            return await instance.export_subject(subject, thread_id)
        except SubjectRequestError as exc:
            raise ToolError(str(exc)) from None

    @server.tool()
    async def erase_subject_data(
        subject: Annotated[str, Field(min_length=1, max_length=256, description="The caller's subject (sub).")],
        thread_id: Annotated[
            str | None, Field(max_length=128, description="Only this thread of the subject (its own thread id).")
        ] = None,
    ) -> SubjectDataResult:
        """Data-subject erasure: deletes every thread of one subject of this instance's organization (or one of
        them): history, checkpoints and thread records; answers how many threads it erased. Needs the
        agentfoundry/admin scope. A subject with nothing to erase is an error, never a silent success."""
        admin()
        try:
            return await instance.erase_subject(subject, thread_id)
        except SubjectRequestError as exc:
            raise ToolError(str(exc)) from None

    return server


def _add_approval_tools(server: MCPServer, instance: Instance, caller: Callable[[str], Caller | None]) -> None:
    """Only on an instance whose governance policy makes tool calls wait for approval (runtime.approvals.policy)."""

    @server.tool()
    async def approve(
        approval_id: ApprovalId,
        decision: Annotated[Literal["approve", "reject"], Field(description="approve: the call is made; reject: not.")],
        comment: Annotated[str | None, Field(max_length=2000, description="Why; kept with the thread.")] = None,
    ) -> ApprovalState:
        """Decide a tool call that waits for approval: the paused turn resumes from its checkpoint (the tool runs,
        or the agent is told it was refused) and the answer carries the turn's final `result`. A second decision
        on the same approval answers with the first one's. The approved call is made at most once: if a task died
        after starting it, `result.error.code` is approval_outcome_unknown (check the target system before asking
        again). Needs the agentfoundry/approve scope."""
        try:
            return await instance.approve(approval_id, decision, comment, caller(APPROVE_SCOPE))
        except ApprovalError as exc:
            raise ToolError(str(exc)) from None

    @server.tool()
    async def pending_approvals() -> PendingApprovals:
        """The tool calls of your organization that wait for a decision, oldest first."""
        try:
            return PendingApprovals(approvals=await instance.pending_approvals(caller(READ_SCOPE)))
        except ApprovalError as exc:
            raise ToolError(str(exc)) from None

    @server.tool()
    async def get_approval(approval_id: ApprovalId) -> ApprovalState:
        """An approval you asked for (or, with agentfoundry/approve, any of your organization's): its state and,
        once decided and resumed, the turn's final `result`."""
        try:
            return await instance.get_approval(approval_id, caller(READ_SCOPE))
        except ApprovalError as exc:
            raise ToolError(str(exc)) from None


class PendingApprovals(BaseModel):
    """What `pending_approvals` answers."""

    approvals: list[ApprovalState]


def build_http_app(instance: Instance) -> Starlette:
    auth = instance_resource_server(instance)
    server = build_mcp_server(instance, auth)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        ready = instance.ready and not instance.draining
        return JSONResponse({"ready": ready, "draining": instance.draining}, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        if auth is not None and (refused := _refuse_without_scope(request, READ_SCOPE, auth)) is not None:
            return refused
        return Response(instance.telemetry.metrics.prometheus(), media_type=PROMETHEUS_CONTENT_TYPE)

    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=instance.config.host_allow_list(),
        allowed_origins=[f"{scheme}://{h}" for h in instance.config.host_allow_list() for scheme in ("http", "https")],
    )
    streaming = streaming_manager(server, security)
    # Sessions only where a client may be asked for an approval inline (runtime.edge.sessions_http).
    config = instance.config
    sessions = (
        session_manager(server, security, config.max_sessions, config.max_sessions_per_caller)
        if instance.approval_policy.active
        else None
    )
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH, stateless_http=True, json_response=True, transport_security=security
    )
    route_mcp_requests(app, server, streaming, sessions)
    app.add_route("/healthz", healthz, methods=["GET"])
    app.add_route("/readyz", readyz, methods=["GET"])
    app.add_route("/metrics", metrics, methods=["GET"])
    app.add_middleware(TraceContextMiddleware)
    if auth is not None:
        app.router.routes[:] = [*_without_metadata_routes(app.router.routes), *_metadata_routes(instance, auth)]
    mcp_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Starlette) -> AsyncIterator[None]:
        await instance.start()
        try:
            async with mcp_lifespan(app_), streaming.run(), sessions.run() if sessions else nullcontext():
                # Everything built at start-up (modules, bundle, graph, schemas) lives as long as the process:
                # moving it out of the collector's view keeps full collections short, which shows in p99.
                gc.collect()
                gc.freeze()
                yield
        finally:
            await instance.stop()

    app.router.lifespan_context = lifespan
    return app


def _without_metadata_routes(routes: list[BaseRoute]) -> list[BaseRoute]:
    return [r for r in routes if not (isinstance(r, Route) and r.path.startswith("/.well-known/"))]


def _metadata_routes(instance: Instance, auth: ResourceServer) -> list[BaseRoute]:
    """RFC 9728 metadata at /.well-known/oauth-protected-resource/mcp (where the WWW-Authenticate header points) and at
    the bare /.well-known/oauth-protected-resource, naming the resource, its issuer and the scopes it knows (the SDK's
    own route would list only transport-wide required scopes, and ours are per tool)."""
    routes = create_protected_resource_routes(
        resource_url=auth.settings.resource_server_url,  # type: ignore[arg-type]  # set by resource_server()
        authorization_servers=[auth.settings.issuer_url],
        scopes_supported=list(SUPPORTED_SCOPES),
        resource_name=f"Agent Foundry instance {instance.bundle.instance.metadata.name}",
    )
    bare = [Route("/.well-known/oauth-protected-resource", r.endpoint, methods=r.methods) for r in routes]
    return [*routes, *(b for b in bare if b.path != routes[0].path)]


def _refuse_without_scope(request: Request, scope: str, auth: ResourceServer) -> Response | None:
    """The bearer middleware's answers, for a plain route: 401 without a valid token, 403 without the scope."""
    user = request.scope.get("user")
    metadata = build_resource_metadata_url(auth.settings.resource_server_url)  # type: ignore[arg-type]
    if not isinstance(user, AuthenticatedUser):
        status, error, description = 401, "invalid_token", "Authentication required"
    elif scope not in user.scopes:
        status, error, description = 403, "insufficient_scope", f"Required scope: {scope}"
    else:
        return None
    challenge = f'Bearer error="{error}", error_description="{description}", resource_metadata="{metadata}"'
    if status == 403:
        challenge += f', scope="{scope}"'
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status_code=status, headers={"WWW-Authenticate": challenge})


class DrainingServer(uvicorn.Server):
    """uvicorn, but SIGTERM/SIGINT mark the instance draining first and the process then exits 0 (uvicorn would
    re-raise the signal after its graceful shutdown, which ECS reports as a crash)."""

    def __init__(self, config: uvicorn.Config, instance: Instance) -> None:
        super().__init__(config)
        self.instance = instance

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Once bound, the instance knows its own ports (port 0 picks one): its backend never calls them."""
        await super().startup(sockets)
        for server in self.servers:
            for bound in server.sockets:
                address = bound.getsockname()
                if isinstance(address, tuple):
                    self.instance.egress.own_ports.add(int(address[1]))

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True
            return
        self.instance.draining = True
        log.info('{"event": "draining", "signal": %d}', sig)
        self.should_exit = True


async def serve_http(instance: Instance) -> None:
    config = instance.config
    install_tracing(config.telemetry, instance.resource)
    uv_config = uvicorn.Config(
        build_http_app(instance),
        host=config.host,
        port=config.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        http="httptools",  # pinned in the image; its C parser costs less per request than h11
        timeout_graceful_shutdown=max(1, int(config.drain_seconds)),
        timeout_keep_alive=65,  # above the ALB's 60 s idle timeout, so the ALB closes first
    )
    try:
        await DrainingServer(uv_config, instance).serve()
    finally:
        shutdown_tracing()


async def serve_stdio(instance: Instance) -> None:
    install_tracing(instance.config.telemetry, instance.resource)
    await instance.start()
    try:
        await build_mcp_server(instance).run_stdio_async()
    finally:
        await instance.stop()
        shutdown_tracing()
