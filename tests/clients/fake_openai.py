"""A local stand-in for the OpenAI Chat Completions API (plain and streamed), for real clients in tests.

One scripted agent turn: while tools are offered and no tool result is in the conversation yet, the model
asks for ``get_weather`` with ``{"city": "Paris"}``; then it answers in text. Usage is fixed per turn
(``TOOL_TURN`` / ``ANSWER_TURN``) so tests can check tokens are counted once.
"""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOOL_TURN = {"prompt_tokens": 40, "completion_tokens": 5, "total_tokens": 45}
ANSWER_TURN = {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
ANSWER = "It is sunny in Paris."
_ids = itertools.count(1)


def _wants_tool(request: dict) -> bool:
    messages = request.get("messages") or []
    return bool(request.get("tools")) and not any(m.get("role") == "tool" for m in messages)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"fake server: no route {self.path}"}})
            return
        n = next(_ids)
        model = request.get("model", "gpt-4o-mini")
        if _wants_tool(request):
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": f"call_{n}", "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}]}
            usage, finish = TOOL_TURN, "tool_calls"
        else:
            message, usage, finish = {"role": "assistant", "content": ANSWER}, ANSWER_TURN, "stop"
        served = f"{model}-2024-07-18"
        if request.get("stream"):
            self._stream(n, served, message, usage, finish)
            return
        self._send(200, {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 1_700_000_000,
                         "model": served, "usage": usage,
                         "choices": [{"index": 0, "finish_reason": finish, "message": message}]})

    def _stream(self, n: int, model: str, message: dict, usage: dict, finish: str) -> None:
        base = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model}
        delta: dict = {"role": "assistant"}
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            delta["tool_calls"] = [{"index": 0, "id": call["id"], "type": "function",
                                    "function": {"name": call["function"]["name"],
                                                 "arguments": call["function"]["arguments"]}}]
        else:
            delta["content"] = message["content"]
        chunks = [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
                  {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
                  {**base, "choices": [], "usage": usage}]
        body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class FakeOpenAI:
    """``with FakeOpenAI() as base_url:`` — the server on a free loopback port while the block runs."""

    def __enter__(self) -> str:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
