"""A lean loopback server with a fixed latency per call, for load benchmarks: OpenAI Chat
Completions (``/v1/chat/completions``) and Anthropic Messages (``/v1/messages``), optionally
behind a provider's rate limit.

The test suite's ``tests/wire_server.py`` runs each request in its own thread, which is right
for fault injection but adds its own queueing under load: 16 threads waking together contend
for the GIL, so 100 ms of asked-for latency becomes 120 ms or more. This server answers from
one asyncio loop in its own process, so the latency a client sees is the latency asked for.

With ``--rpm N`` it enforces N requests per minute as the providers do (``tests/
rate_limiter.py``: a token bucket of ``--burst-s`` seconds' worth, a minute's by default,
that starts full), with their headers on every answer and a 429 with ``retry-after``,
answered at once, for a request that does not fit.

Run as ``python _latency_server.py LATENCY_S [--rpm N] [--burst-s S]``: it prints its base
URL on the first line of stdout. ``GET /_stats`` returns the completions per model, the
429s, and the seconds from the first request to the last answer; ``POST /_reset`` clears
them (and refills the bucket).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from rate_limiter import Limiter, RateLimit

_SUM = re.compile(r"What is (-?\d+) \+ (-?\d+)\?")
_REASONS = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}


class _State:
    def __init__(self, limit: RateLimit | None) -> None:
        self.limit = limit
        self.reset()

    def reset(self) -> None:
        self.counts: Counter[str] = Counter()
        self.refused = 0
        self.first: float | None = None
        self.last: float | None = None
        #: when each completion was answered (epoch seconds)
        self.answered: list[float] = []
        self.limiter = Limiter(self.limit) if self.limit else None

    def stats(self) -> dict[str, Any]:
        span = (self.last - self.first) if self.first and self.last else 0.0
        return {
            "requests": dict(self.counts),
            "refused": self.refused,
            "span_s": span,
            "answered_at": self.answered,
        }


def _answer(prompt: str) -> str:
    """An arithmetic question ("What is A + B?") is answered, off by one when 7A + B ends
    in 0, like a cheap model; anything else is echoed."""
    asked = _SUM.search(prompt)
    if asked is None:
        return "echo: " + prompt
    a, b = int(asked.group(1)), int(asked.group(2))
    wrong = (a * 7 + b) % 10 == 0
    return f"{a} + {b} = {a + b + wrong}"


def _completion(n: int, body: dict, anthropic: bool) -> bytes:
    messages = body.get("messages") or [{}]
    text = _answer(str(messages[-1].get("content", "")))
    model = body.get("model", "unknown")
    if anthropic:
        return json.dumps(
            {
                "id": f"msg_{n:06d}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 5},
            }
        ).encode()
    return json.dumps(
        {
            "id": f"chatcmpl-{n:06d}",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
    ).encode()


def _rate_limited(anthropic: bool) -> bytes:
    if anthropic:
        error = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    else:
        error = {
            "error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}
        }
    return json.dumps(error).encode()


def _response(status: int, data: bytes, headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\n{extra}\r\n"
    )
    return head.encode() + data


async def _serve(latency_s: float, limit: RateLimit | None) -> None:
    served = 0
    state = _State(limit)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                length = 0
                for line in lines:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                raw = await reader.readexactly(length) if length else b""
                status, headers = 200, {}
                if path == "/_stats":
                    data = json.dumps(state.stats()).encode()
                elif path == "/_reset":
                    state.reset()
                    data = b"{}"
                elif method != "POST":
                    status, data = 404, b'{"error": {"message": "not found"}}'
                else:
                    body = json.loads(raw or b"{}")
                    anthropic = path.rstrip("/").endswith("/messages")
                    flavor = "anthropic" if anthropic else "openai"
                    now = time.monotonic()
                    state.first = state.first or now
                    admitted, headers = (
                        state.limiter.admit(flavor, body) if state.limiter else (True, {})
                    )
                    if admitted:
                        await asyncio.sleep(latency_s)
                        served += 1
                        state.counts[body.get("model", "unknown")] += 1
                        state.answered.append(time.time())
                        data = _completion(served, body, anthropic)
                    else:
                        state.refused += 1
                        status, data = 429, _rate_limited(anthropic)
                    state.last = time.monotonic()
                writer.write(_response(status, data, headers))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=256)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


class LatencyServer:
    """Runs this server in a subprocess: ``with LatencyServer(0.1) as server: server.url``
    (the OpenAI base URL; ``server.root`` is Anthropic's)."""

    def __init__(
        self, latency_s: float, *, rpm: float | None = None, burst_s: float | None = None
    ) -> None:
        self.latency_s = latency_s
        self.rpm = rpm
        self.burst_s = burst_s
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    def __enter__(self) -> LatencyServer:
        args = [sys.executable, str(Path(__file__)), str(self.latency_s)]
        if self.rpm is not None:
            args += ["--rpm", str(self.rpm)]
        if self.burst_s is not None:
            args += ["--burst-s", str(self.burst_s)]
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait()

    def _call(self, method: str, path: str) -> dict[str, Any]:
        request = urllib.request.Request(self.root + path, method=method)
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        """Completions per model, 429s, and the seconds from the first request to the
        last answer, since the last reset."""
        return self._call("GET", "/_stats")

    def requests(self) -> int:
        """Completions served since the last reset."""
        return sum(self.stats()["requests"].values())

    def reset(self) -> None:
        self._call("POST", "/_reset")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("latency", type=float)
    parser.add_argument("--rpm", type=float)
    parser.add_argument("--burst-s", type=float)
    options = parser.parse_args()
    rate = RateLimit(options.rpm, burst_s=options.burst_s) if options.rpm else None
    asyncio.run(_serve(options.latency, rate))
