"""A lean loopback OpenAI-compatible server with a fixed latency per call, for load benchmarks.

The test suite's ``tests/wire_server.py`` runs each request in its own thread, which is right
for fault injection but adds its own queueing under load: 16 threads waking together contend
for the GIL, so 100 ms of asked-for latency becomes 120 ms or more. This server answers from
one asyncio loop in its own process, so the latency a client sees is the latency asked for.

Run as ``python _latency_server.py LATENCY_S``: it prints its base URL on the first line of
stdout. ``GET /_stats`` returns ``{"requests": {model: count}}``; ``POST /_reset`` clears it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

_counts: Counter[str] = Counter()


def _completion(n: int, body: dict) -> bytes:
    messages = body.get("messages") or [{}]
    text = "echo: " + str(messages[-1].get("content", ""))
    return json.dumps(
        {
            "id": f"chatcmpl-{n:06d}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "unknown"),
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


def _response(status: int, data: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _serve(latency_s: float) -> None:
    served = 0

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
                if path == "/_stats":
                    data = json.dumps({"requests": dict(_counts)}).encode()
                elif path == "/_reset":
                    _counts.clear()
                    data = b"{}"
                else:
                    body = json.loads(raw or b"{}")
                    await asyncio.sleep(latency_s)
                    served += 1
                    _counts[body.get("model", "unknown")] += 1
                    data = _completion(served, body)
                writer.write(_response(200, data))
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
    """Runs this server in a subprocess: ``with LatencyServer(0.1) as server: server.url``."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> LatencyServer:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__)), str(self.latency_s)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait()

    def _call(self, method: str, path: str) -> dict[str, Any]:
        request = urllib.request.Request(self.url.removesuffix("/v1") + path, method=method)
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    def requests(self) -> int:
        """Completions served since the last reset."""
        return sum(self._call("GET", "/_stats")["requests"].values())

    def reset(self) -> None:
        self._call("POST", "/_reset")


if __name__ == "__main__":
    asyncio.run(_serve(float(sys.argv[1])))
