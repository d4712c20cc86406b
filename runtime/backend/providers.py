"""Model providers behind the backend's `model_generate` tool.

The offline provider is the default: deterministic text derived from its input, so every test and local run is
reproducible without a network. Given tools, it calls the one whose name or description best matches the request's
words (ties: the first in the spec's order) with the request text as the tool's first string argument, then answers
with the tool's result. The Bedrock provider calls the Converse API through boto3 (tool use: `toolConfig`, `toolUse`,
`toolResult`); its request is built by a pure function so its shape can be checked without AWS.

Given an `on_text` callback (a caller that streams: runtime.telemetry.turn_progress), a provider reports its text as it
is generated: Bedrock through ConverseStream (its events folded into the same ModelReply by `ConverseStreamReader`),
the offline provider in word chunks of its deterministic answer. The reply is the same either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from runtime.config import OfflineModelSettings

TextSink = Callable[[str], Awaitable[None]]
"""Receives the model's text as it is generated, chunk by chunk, in order."""
OFFLINE_CHUNK_WORDS = 3
"""The offline provider's streamed chunks: this many words each (the last may be shorter)."""


class ProviderError(RuntimeError):
    """The model could not answer; the message is safe to show (no credentials, no raw payloads)."""


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may ask for: its namespaced name, description and JSON Schema of its arguments."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolStep:
    """One round of the tool loop: the calls the model asked for and their results (text), in the same order."""

    calls: tuple[ToolCall, ...]
    results: tuple[str, ...]


@dataclass(frozen=True)
class ModelRequest:
    agent_id: str
    system: str
    prompt: str
    max_tokens: int
    temperature: float
    model_id: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    steps: tuple[ToolStep, ...] = ()
    request_text: str = ""
    """The caller's request alone (without history): what the offline provider matches tools against."""


@dataclass(frozen=True)
class ModelReply:
    text: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    tool_calls: tuple[ToolCall, ...] = ()
    """Non-empty: the model wants these tools called before it answers."""


_STOP_WORDS = frozenset({"the", "and", "for", "with", "this", "that", "from", "into", "your", "you", "please", "can"})


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2 and w not in _STOP_WORDS}


def pick_tool(tools: tuple[ToolSpec, ...], request_text: str) -> ToolSpec | None:
    """The tool whose name or description shares the most words with the request; ties: the first given."""
    if not tools:  # most calls offer none: spare the word split of a prompt that carries the thread's history
        return None
    wanted = _words(request_text)
    best, best_score = None, 0
    for tool in tools:
        score = len(wanted & _words(f"{tool.name} {tool.description}"))
        if score > best_score:
            best, best_score = tool, score
    return best


def first_string_argument(schema: dict[str, Any]) -> str | None:
    """The name of the first property of type string in a tool's JSON Schema, in declaration order."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return None
    for name, prop in properties.items():
        if isinstance(prop, dict) and prop.get("type") == "string":
            return str(name)
    return None


class ModelProvider(Protocol):
    name: str

    @property
    def default_model(self) -> str:
        """The model a request without its own model id gets."""
        ...

    async def generate(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelReply:
        """`on_text`: stream the text as it is generated (the reply still carries all of it)."""
        ...


def word_chunks(text: str, words: int = OFFLINE_CHUNK_WORDS) -> list[str]:
    """`text` in pieces of `words` words that join back to it exactly (each piece keeps its trailing space)."""
    pieces = re.findall(r"\s*\S+\s*", text)  # the first piece keeps any leading space
    return ["".join(pieces[i : i + words]) for i in range(0, len(pieces), words)] or ([text] if text else [])


class OfflineProvider:
    """Echoes a summary of the prompt with a digest of the whole input: same input, same answer."""

    name = "offline"
    default_model = "offline-echo"

    def __init__(self, settings: OfflineModelSettings | None = None) -> None:
        self._settings = settings or OfflineModelSettings()

    async def generate(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelReply:
        slow = not self._settings.slow_agents or request.agent_id in self._settings.slow_agents
        if self._settings.latency_ms and slow:
            await asyncio.sleep(self._settings.latency_ms / 1000)
        reply = self._answer(request)
        if on_text is not None:
            for chunk in word_chunks(reply.text):
                await on_text(chunk)
        return reply

    def _answer(self, request: ModelRequest) -> ModelReply:
        if request.agent_id in self._settings.fail_agents:
            raise ProviderError(f"offline provider is set to fail for agent {request.agent_id}")
        digest = hashlib.sha256(f"{request.system}\x00{request.prompt}".encode()).hexdigest()[:12]
        words = request.prompt.split()
        model = request.model_id or self.default_model
        input_tokens = len(words) + len(request.system.split())
        if request.steps:  # the tool has answered: answer with its result
            result = " ".join(" ".join(step.results) for step in request.steps)
            text = f"[{request.agent_id}] {result[:400]} (offline#{digest})"
            return ModelReply(text, self.name, model, input_tokens, len(text.split()))
        tool = pick_tool(request.tools, request.request_text or request.prompt)
        if tool is not None:
            argument = first_string_argument(tool.input_schema)
            arguments = {argument: request.request_text or request.prompt} if argument else {}
            call = ToolCall(id="offline-call-1", name=tool.name, arguments=arguments)
            return ModelReply("", self.name, model, input_tokens, 0, tool_calls=(call,))
        text = f"[{request.agent_id}] {' '.join(words)[:400]} (offline#{digest})"
        return ModelReply(
            text=text,
            provider=self.name,
            model=model,
            input_tokens=input_tokens,
            output_tokens=len(text.split()),
        )


def bedrock_tool_name(name: str) -> str:
    """Converse tool names allow [a-zA-Z0-9_-] only: 'ticketing.create_ticket' -> 'ticketing--create_ticket'."""
    return name.replace(".", "--")


def converse_request(request: ModelRequest, *, default_model_id: str) -> dict[str, Any]:
    """The keyword arguments of bedrock-runtime `converse` for one request: with tools, a `toolConfig`, and each
    earlier round of the loop as an assistant `toolUse` turn followed by a user `toolResult` turn."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"text": request.prompt}]}]
    for step in request.steps:
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"toolUse": {"toolUseId": c.id, "name": bedrock_tool_name(c.name), "input": c.arguments}}
                    for c in step.calls
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": c.id, "content": [{"text": r}], "status": "success"}}
                    for c, r in zip(step.calls, step.results, strict=True)
                ],
            }
        )
    kwargs: dict[str, Any] = {
        "modelId": request.model_id or default_model_id,
        "system": [{"text": request.system}],
        "messages": messages,
        "inferenceConfig": {"maxTokens": request.max_tokens, "temperature": request.temperature},
    }
    if request.tools:
        kwargs["toolConfig"] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": bedrock_tool_name(t.name),
                        "description": t.description or t.name,
                        "inputSchema": {"json": t.input_schema or {"type": "object", "properties": {}}},
                    }
                }
                for t in request.tools
            ]
        }
    return kwargs


class BedrockProvider:
    """Amazon Bedrock through the Converse API. The boto3 client is passed in (tests pass a stubbed one)."""

    name = "bedrock"

    def __init__(self, *, client: Any, default_model_id: str) -> None:
        self._client = client
        self._default_model_id = default_model_id

    @property
    def default_model(self) -> str:
        return self._default_model_id

    @classmethod
    def from_region(cls, *, region: str | None, default_model_id: str) -> BedrockProvider:
        import boto3  # imported only when an instance is configured for Bedrock

        return cls(client=boto3.client("bedrock-runtime", region_name=region), default_model_id=default_model_id)

    async def generate(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelReply:
        kwargs = converse_request(request, default_model_id=self._default_model_id)
        names = {bedrock_tool_name(t.name): t.name for t in request.tools}
        if on_text is not None:
            return await self._stream(kwargs, ConverseStreamReader(kwargs["modelId"], names), on_text)
        response = await asyncio.to_thread(self._call, kwargs)
        return parse_converse_response(response, model=kwargs["modelId"], tool_names=names)

    def _call(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response: dict[str, Any] = self._client.converse(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise bedrock_error("converse", exc) from None
        return response

    async def _stream(self, kwargs: dict[str, Any], reader: ConverseStreamReader, on_text: TextSink) -> ModelReply:
        """ConverseStream: boto3 reads the event stream in a worker thread and hands each event to the loop, which
        folds it into the reply and passes text on as it comes. A cancelled turn closes the stream."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[dict[str, Any] | ProviderError | None] = asyncio.Queue()
        stop = threading.Event()

        def put(item: dict[str, Any] | ProviderError | None) -> None:
            loop.call_soon_threadsafe(events.put_nowait, item)

        def pump() -> None:
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                stream = self._client.converse_stream(**kwargs)["stream"]
                for event in stream:
                    if stop.is_set():
                        stream.close()
                        return
                    put(event)
            except (ClientError, BotoCoreError) as exc:
                put(bedrock_error("converse_stream", exc))
            finally:
                put(None)

        reading = asyncio.ensure_future(asyncio.to_thread(pump))
        try:
            while (event := await events.get()) is not None:
                if isinstance(event, ProviderError):
                    raise event
                if chunk := reader.feed(event):
                    await on_text(chunk)
        finally:
            stop.set()  # on an error or a cancelled turn: the thread closes the stream at its next event
        await reading
        return reader.reply()


def bedrock_error(operation: str, exc: Exception) -> ProviderError:
    """A failed Bedrock call, named by the service's error code (a ClientError) or else botocore's error class."""
    from botocore.exceptions import ClientError

    code = exc.response.get("Error", {}).get("Code", "error") if isinstance(exc, ClientError) else type(exc).__name__
    return ProviderError(f"bedrock {operation} failed ({code})")


STREAM_ERRORS = (
    "internalServerException",
    "modelStreamErrorException",
    "validationException",
    "throttlingException",
    "serviceUnavailableException",
)
"""ConverseStream's error events (botocore raises most of them itself while reading; a stubbed stream may not)."""


@dataclass
class ConverseStreamReader:
    """Folds ConverseStream events into the ModelReply `converse` would have given: text deltas joined, each
    toolUse block's start (id, name) and its input's JSON fragments, and the metadata event's token usage."""

    model: str
    tool_names: dict[str, str] = field(default_factory=dict)
    """The Converse names of the request's tools -> their own names."""
    _text: list[str] = field(default_factory=list)
    _tools: dict[int, tuple[str, str, list[str]]] = field(default_factory=dict)
    _usage: dict[str, Any] = field(default_factory=dict)

    def feed(self, event: dict[str, Any]) -> str | None:
        """Takes one event; returns the text it adds, if any."""
        try:
            if "contentBlockDelta" in event:
                block = event["contentBlockDelta"]
                delta = block["delta"]
                if "text" in delta:
                    text = str(delta["text"])
                    self._text.append(text)
                    return text or None
                if "toolUse" in delta:
                    self._tools[int(block["contentBlockIndex"])][2].append(str(delta["toolUse"].get("input", "")))
            elif "contentBlockStart" in event:
                block = event["contentBlockStart"]
                use = block.get("start", {}).get("toolUse")
                if use is not None:
                    self._tools[int(block["contentBlockIndex"])] = (str(use["toolUseId"]), str(use["name"]), [])
            elif "metadata" in event:
                self._usage = dict(event["metadata"].get("usage") or {})
            elif failed := next((name for name in STREAM_ERRORS if name in event), None):
                raise ProviderError(f"bedrock converse_stream failed ({failed})")
        except (KeyError, TypeError) as exc:
            raise ProviderError(f"bedrock converse_stream sent an unexpected event (missing {exc})") from None
        return None

    def reply(self) -> ModelReply:
        calls = []
        for index in sorted(self._tools):
            use_id, name, fragments = self._tools[index]
            raw = "".join(fragments).strip()
            try:
                arguments = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                raise ProviderError(f"bedrock converse_stream sent tool input for {name} that is not JSON") from None
            calls.append(ToolCall(id=use_id, name=self.tool_names.get(name, name), arguments=dict(arguments)))
        return bedrock_reply("".join(self._text), tuple(calls), self._usage, model=self.model, names=self.tool_names)


def parse_converse_response(
    response: dict[str, Any], *, model: str, tool_names: dict[str, str] | None = None
) -> ModelReply:
    """`tool_names` maps the Converse names of the request's tools back to their own."""
    names = tool_names or {}
    try:
        blocks = response["output"]["message"]["content"]
        text = "".join(block["text"] for block in blocks if "text" in block)
        uses = [block["toolUse"] for block in blocks if "toolUse" in block]
        calls = tuple(
            ToolCall(id=str(u["toolUseId"]), name=names.get(u["name"], u["name"]), arguments=dict(u.get("input") or {}))
            for u in uses
        )
        usage = response.get("usage", {})
    except (KeyError, TypeError) as exc:
        raise ProviderError(f"bedrock converse returned an unexpected shape (missing {exc})") from None
    return bedrock_reply(text, calls, usage, model=model, names=names)


def bedrock_reply(
    text: str, calls: tuple[ToolCall, ...], usage: dict[str, Any], *, model: str, names: dict[str, str]
) -> ModelReply:
    """A Converse answer, whole or streamed, as the gateway's reply; a call of a tool that was not offered (by its
    own name, `names`' values) is refused."""
    unknown = sorted({c.name for c in calls if c.name not in names.values()})
    if unknown:
        raise ProviderError(f"bedrock asked for tools it was not offered: {', '.join(unknown)}")
    return ModelReply(
        text=text,
        provider="bedrock",
        model=model,
        input_tokens=int(usage.get("inputTokens", 0)),
        output_tokens=int(usage.get("outputTokens", 0)),
        tool_calls=calls,
    )
