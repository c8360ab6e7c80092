"""An LLM provider on loopback (a real HTTP server, in a thread of its own) for tests and benchmarks:
it records every request, answers OpenAI's `POST /v1/chat/completions` (and the same under Azure's
deployment path, Gemini's `/v1beta/openai/` and DeepSeek's root) with an object fitting the
request's `response_format` schema, answers Anthropic's `POST /v1/messages` in its wire format (the
forced tool's input fitting its schema), and plays faults queued by the test (status codes with
bodies and headers, latency, raw content)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Fault:
    """What the next request gets instead of the default answer (each fault serves one request)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content: str | None = None  # a 200 whose message content is this text


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    disconnected: bool = False
    answered: bool = False


class LlmStub:
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.faults: list[Fault] = []
        self.latency = 0.0
        self.content: str | None = None
        # Given a request body, the reply's content (None: the default answer).
        self.responder: Callable[[dict[str, Any]], str | None] | None = None
        self.usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        # An agent's scripted turns (`tool_turn`, `final_turn`): a request carrying `tools` gets the
        # turn numbered by the assistant tool-call messages it already holds, so a retried turn gets
        # the same answer (the last turn repeats).
        self.turns: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0  # most requests held at once since the last reset
        self.port = 0
        self._server: uvicorn.Server | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self.latency = 0.0
            self.content = None
            self.responder = None
            self.turns = []

    def calls(self, key: str | None = None) -> list[Seen]:
        """The chat requests so far (those carrying `key`, when given)."""
        with self._lock:
            seen = list(self.requests)
        if key is None:
            return seen
        return [
            s
            for s in seen
            if s.headers.get("authorization") == f"Bearer {key}"
            or s.headers.get("api-key") == key
            or s.headers.get("x-api-key") == key
        ]

    async def _receive(self, request: Request) -> tuple[Seen, Fault | None, Response | None]:
        """The request recorded and its fault's delay played; a response when that ends it."""
        body = await request.json()
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        seen = Seen(path, {k.lower(): v for k, v in request.headers.items()}, body)
        with self._lock:
            self.requests.append(seen)
            fault = self.faults.pop(0) if self.faults else None
        delay = fault.delay if fault else self.latency
        if delay and await _client_left(request, delay):
            seen.disconnected = True
            return seen, fault, Response(status_code=499)
        seen.answered = True
        if fault is not None and fault.status != 200:
            default = (
                {"type": "error", "error": {"type": "api_error", "message": "stub fault"}}
                if request.url.path.endswith("/messages")
                else {"error": {"message": "stub fault"}}
            )
            return seen, fault, JSONResponse(fault.body or default, fault.status, fault.headers)
        return seen, fault, None

    def _content(self, fault: Fault | None, body: dict[str, Any]) -> str | None:
        content = fault.content if fault and fault.content is not None else self.content
        if content is None and self.responder is not None:
            content = self.responder(body)
        return content

    async def _messages(self, request: Request) -> Response:
        """Anthropic's Messages API: a forced tool is answered with a `tool_use` block whose input fits
        the tool's schema; an agent's turn with the scripted turn as text and `tool_use` blocks;
        otherwise a text block (each after a thinking block when thinking is on)."""
        seen, fault, done = await self._receive(request)
        if done is not None:
            return done
        body = seen.body
        content = self._content(fault, body)
        blocks: list[dict[str, Any]] = []
        if body.get("thinking"):
            n = held(body) + 1
            blocks.append({"type": "thinking", "thinking": f"Turn {n}.", "signature": f"sig{n}"})
        forced = (body.get("tool_choice") or {}).get("name")
        tool = next((t for t in body.get("tools") or [] if t.get("name") == forced), None)
        turn = self._turn(body)
        if turn is not None:
            blocks += _anthropic_blocks(turn)
            stop = turn.get("stop_reason") or ("tool_use" if turn.get("tool_calls") else "end_turn")
        elif tool is not None and content is None:
            value = _example(tool.get("input_schema") or {})
            blocks.append({"type": "tool_use", "id": "toolu_stub", "name": forced, "input": value})
            stop = "tool_use"
        else:
            blocks.append({"type": "text", "text": content if content is not None else '{"output": "stub"}'})
            stop = "end_turn"
        return JSONResponse(
            {
                "id": "msg_stub",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", ""),
                "content": blocks,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": self.usage["prompt_tokens"],
                    "output_tokens": self.usage["completion_tokens"],
                },
            }
        )

    async def _chat(self, request: Request) -> Response:
        seen, fault, done = await self._receive(request)
        if done is not None:
            return done
        body = seen.body
        message = self._turn(body)
        if message is None:
            content = self._content(fault, body)
            if content is None:
                content = json.dumps(_fitting(body))
            message = {"role": "assistant", "content": content}
        return JSONResponse(
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                    }
                ],
                "usage": self.usage,
            }
        )

    def _turn(self, body: dict[str, Any]) -> dict[str, Any] | None:
        if not self.turns or not _agent_turn(body):
            return None
        return self.turns[min(held(body), len(self.turns) - 1)]

    def tool_requests(self) -> list[Seen]:
        """The requests of agent turns that the stub answered."""
        return [s for s in self.calls() if _agent_turn(s.body) and s.answered]

    async def _control(self, request: Request) -> Response:
        """Benchmarks drive a stub in another process: set the latency, read and reset the counts."""
        if request.method == "POST":
            body = await request.json()
            with self._lock:
                self.latency = float(body.get("latency", self.latency))
                self.turns = list(body.get("turns", self.turns))
                self.requests.clear()
                self.peak = self.in_flight
        with self._lock:
            disconnected = sum(1 for r in self.requests if r.disconnected)
            return JSONResponse(
                {
                    "latency": self.latency,
                    "requests": len(self.requests),
                    "disconnected": disconnected,
                    "peak": self.peak,
                }
            )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._counted, methods=["POST"]),
                Route("/openai/deployments/{name}/chat/completions", self._counted, methods=["POST"]),
                Route("/v1beta/openai/chat/completions", self._counted, methods=["POST"]),
                Route("/chat/completions", self._counted, methods=["POST"]),
                Route("/v1/messages", self._counted, methods=["POST"]),
                Route("/_control", self._control, methods=["GET", "POST"]),
            ]
        )

    async def _counted(self, request: Request) -> Response:
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            if request.url.path.endswith("/messages"):
                return await self._messages(request)
            return await self._chat(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    @contextlib.contextmanager
    def running(self) -> Iterator[LlmStub]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off", timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not self._server.started:
            time.sleep(0.02)
        try:
            yield self
        finally:
            self._server.should_exit = True
            thread.join(10)
            sock.close()


def tool_turn(*calls: tuple[str, Any], turn: int = 1) -> dict[str, Any]:
    """An assistant message asking for these tools (name, arguments: a dict, or raw text sent as is)."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{turn}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
            }
            for i, (name, args) in enumerate(calls)
        ],
    }


def final_turn(output: str) -> dict[str, Any]:
    return {"role": "assistant", "content": json.dumps({"output": output})}


def _agent_turn(body: dict[str, Any]) -> bool:
    """A request offering tools to choose from (not Anthropic's forced output tool)."""
    choice = body.get("tool_choice")  # the chat format's may be a word ("auto")
    return "tools" in body and not (isinstance(choice, dict) and choice.get("type") == "tool")


def held(body: dict[str, Any]) -> int:
    """How many tool-asking assistant turns the request's conversation holds (either wire format)."""

    def asked(message: dict[str, Any]) -> bool:
        content = message.get("content")
        blocks = content if message.get("role") == "assistant" and isinstance(content, list) else []
        return bool(message.get("tool_calls")) or any(b.get("type") == "tool_use" for b in blocks)

    return sum(1 for m in body.get("messages") or [] if asked(m))


def _anthropic_blocks(turn: dict[str, Any]) -> list[dict[str, Any]]:
    """A scripted turn (the chat format's assistant message) as Messages API content blocks."""
    blocks: list[dict[str, Any]] = []
    if turn.get("content"):
        blocks.append({"type": "text", "text": turn["content"]})
    for call in turn.get("tool_calls") or []:
        function = call["function"]
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": function["name"],
                "input": json.loads(function["arguments"]),
            }
        )
    return blocks


async def _client_left(request: Request, delay: float) -> bool:
    """Wait `delay` seconds; True as soon as the client closes the connection. The server's own
    `http.disconnect` message is awaited, not polled: a benchmark holds a thousand requests at once
    and polling each every 50 ms took a core."""
    end = time.monotonic() + delay
    while (left := end - time.monotonic()) > 0:
        try:
            message = await asyncio.wait_for(request.receive(), left)
        except TimeoutError:
            return False
        if message.get("type") == "http.disconnect":
            return True
    return False


def _fitting(body: dict[str, Any]) -> dict[str, Any]:
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
    if not schema:
        return {"output": "stub"}
    value = _example(schema)
    return value if isinstance(value, dict) else {"output": "stub"}


def _example(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {k: _example(v) for k, v in (schema.get("properties") or {}).items()}
    return {"string": "stub", "integer": 1, "number": 1.5, "boolean": True, "array": []}.get(str(kind))


def main() -> None:
    """`python -m tests.llm_stub PORT`: serve until killed (benchmarks run it in its own process)."""
    import sys

    stub = LlmStub()
    config = uvicorn.Config(
        stub.app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="off"
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
