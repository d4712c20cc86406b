"""Model providers behind the backend's `model_generate` tool.

The offline provider is the default: deterministic text derived from its input, so every test and local run is
reproducible without a network. The Bedrock provider calls the Converse API through boto3; its request is built
by a pure function so its shape can be checked without AWS.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from runtime.config import OfflineModelSettings


class ProviderError(RuntimeError):
    """The model could not answer; the message is safe to show (no credentials, no raw payloads)."""


@dataclass(frozen=True)
class ModelRequest:
    agent_id: str
    system: str
    prompt: str
    max_tokens: int
    temperature: float
    model_id: str | None = None


@dataclass(frozen=True)
class ModelReply:
    text: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int


class ModelProvider(Protocol):
    name: str

    async def generate(self, request: ModelRequest) -> ModelReply: ...


class OfflineProvider:
    """Echoes a summary of the prompt with a digest of the whole input: same input, same answer."""

    name = "offline"

    def __init__(self, settings: OfflineModelSettings | None = None) -> None:
        self._settings = settings or OfflineModelSettings()

    async def generate(self, request: ModelRequest) -> ModelReply:
        slow = not self._settings.slow_agents or request.agent_id in self._settings.slow_agents
        if self._settings.latency_ms and slow:
            await asyncio.sleep(self._settings.latency_ms / 1000)
        if request.agent_id in self._settings.fail_agents:
            raise ProviderError(f"offline provider is set to fail for agent {request.agent_id}")
        digest = hashlib.sha256(f"{request.system}\x00{request.prompt}".encode()).hexdigest()[:12]
        words = request.prompt.split()
        text = f"[{request.agent_id}] {' '.join(words)[:400]} (offline#{digest})"
        return ModelReply(
            text=text,
            provider=self.name,
            model=request.model_id or "offline-echo",
            input_tokens=len(words) + len(request.system.split()),
            output_tokens=len(text.split()),
        )


def converse_request(request: ModelRequest, *, default_model_id: str) -> dict[str, Any]:
    """The keyword arguments of bedrock-runtime `converse` for one request."""
    return {
        "modelId": request.model_id or default_model_id,
        "system": [{"text": request.system}],
        "messages": [{"role": "user", "content": [{"text": request.prompt}]}],
        "inferenceConfig": {"maxTokens": request.max_tokens, "temperature": request.temperature},
    }


class BedrockProvider:
    """Amazon Bedrock through the Converse API. The boto3 client is passed in (tests pass a stubbed one)."""

    name = "bedrock"

    def __init__(self, *, client: Any, default_model_id: str) -> None:
        self._client = client
        self._default_model_id = default_model_id

    @classmethod
    def from_region(cls, *, region: str | None, default_model_id: str) -> BedrockProvider:
        import boto3  # imported only when an instance is configured for Bedrock

        return cls(client=boto3.client("bedrock-runtime", region_name=region), default_model_id=default_model_id)

    async def generate(self, request: ModelRequest) -> ModelReply:
        kwargs = converse_request(request, default_model_id=self._default_model_id)
        return parse_converse_response(await asyncio.to_thread(self._call, kwargs), model=kwargs["modelId"])

    def _call(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response: dict[str, Any] = self._client.converse(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise ProviderError(f"bedrock converse failed ({code})") from None
        except BotoCoreError as exc:
            raise ProviderError(f"bedrock converse failed ({type(exc).__name__})") from None
        return response


def parse_converse_response(response: dict[str, Any], *, model: str) -> ModelReply:
    try:
        blocks = response["output"]["message"]["content"]
        text = "".join(block["text"] for block in blocks if "text" in block)
        usage = response.get("usage", {})
    except (KeyError, TypeError) as exc:
        raise ProviderError(f"bedrock converse returned an unexpected shape (missing {exc})") from None
    return ModelReply(
        text=text,
        provider="bedrock",
        model=model,
        input_tokens=int(usage.get("inputTokens", 0)),
        output_tokens=int(usage.get("outputTokens", 0)),
    )
