"""A small Amazon Bedrock Converse endpoint on 127.0.0.1 for runtime processes in tests: boto3's real
bedrock-runtime client reaches it through AWS_ENDPOINT_URL_BEDROCK_RUNTIME. Each answer reports token counts that
depend on the request (so every turn's differ), as Bedrock's `usage` block does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Converse(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not self.path.endswith("/converse"):
            self.send_error(404)
            return
        request = json.loads(body)
        prompt = json.dumps(request.get("messages", []))
        input_tokens, output_tokens = len(prompt) // 4 + 3, 5 + len(prompt) % 7
        answer = {
            "output": {"message": {"role": "assistant", "content": [{"text": f"planned ({len(prompt)} chars)"}]}},
            "stopReason": "end_turn",
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
            "metrics": {"latencyMs": 1},
        }
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def fake_bedrock() -> Iterator[str]:
    """Yields the endpoint URL (for AWS_ENDPOINT_URL_BEDROCK_RUNTIME)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Converse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
