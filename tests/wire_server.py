"""A loopback HTTP server speaking the Anthropic Messages and OpenAI Chat Completions wire formats.

The official SDKs talk to it over real sockets (they use ``httpx2``, which respx and
pytest-httpx do not intercept). Behaviour is programmable:

* an answer function ``answer(body) -> str`` (default ``"echo: " + last user text``);
* a queue of scripted faults consumed in order, one per request (``server.script(["429",
  "ok"])`` or :class:`Fault` objects): HTTP errors in each provider's error shape, ``hang``,
  ``malformed``, ``wrong-shape``, ``disconnect``;
* seeded random faults (``fault_rates={"429": 0.3}``) once the script is used up, and a
  fixed latency per request, for load tests;
* ``slots=N``: like a llama.cpp server, it works on N requests at once (the others wait
  their turn) and says so at ``GET /props`` (``total_slots``);
* ``rate_limit=RateLimit(requests_per_minute=600, ...)``: the provider's rate limit, with
  the headers and 429s each provider sends (see ``rate_limiter.py``), checked before the
  script's faults.

Every request runs in its own thread, so a hang or latency never blocks other requests.
Only the standard library is used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal

from rate_limiter import Limiter, RateLimit


class _Slots:
    """N slots taken in the order requests ask for them, as a llama.cpp server queues its
    tasks (a ``threading.Semaphore`` lets a late request barge past one that waited)."""

    def __init__(self, n: int) -> None:
        self._n = n
        self._cond = threading.Condition()
        self._issued = 0
        self._done = 0

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._issued
            self._issued += 1
            self._cond.wait_for(lambda: ticket < self._done + self._n)

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._done += 1
            self._cond.notify_all()


FaultKind = Literal["ok", "status", "hang", "malformed", "wrong-shape", "disconnect"]
Flavor = Literal["anthropic", "openai"]

ANTHROPIC_PATHS = ("/v1/messages",)
OPENAI_PATHS = ("/v1/chat/completions", "/chat/completions")

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


@dataclass
class Fault:
    """One scripted behaviour for one request.

    ``kind``: ``ok`` (a normal answer, ``text`` overriding the answer function),
    ``status`` (HTTP ``status`` with the provider's error body), ``hang`` (wait ``hang_s``,
    then answer normally, or earlier if the server stops), ``malformed`` (200 with a
    non-JSON body), ``wrong-shape`` (200 with valid JSON of the wrong shape),
    ``disconnect`` (close the connection without a response).
    """

    kind: FaultKind = "ok"
    status: int = 200
    #: Sent as ``retry-after-ms`` on 429 and 5xx (tiny, so SDK retries are fast); None omits it.
    retry_after_ms: float | None = 1
    #: Sent as ``retry-after`` when set (seconds or an HTTP date).
    retry_after: str | None = None
    message: str | None = None
    #: For ``hang``: how long to wait before answering.
    hang_s: float = 30.0
    #: For ``ok``: the answer text; for ``malformed``/``wrong-shape``: the raw body.
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str | int | Fault) -> Fault:
        """A Fault from ``"429"``, ``500``, ``"ok"``, ``"hang"``, ``"malformed"``, ..."""
        if isinstance(spec, Fault):
            return spec
        name = str(spec).strip().lower()
        if name.isdigit():
            status = int(name)
            return cls("ok") if status == 200 else cls("status", status=status)
        if name in ("ok", "hang", "malformed", "wrong-shape", "disconnect"):
            return cls(name)  # type: ignore[arg-type]
        raise ValueError(
            f"unknown fault {spec!r}: use an HTTP status, ok, hang, malformed, "
            "wrong-shape or disconnect"
        )

    @property
    def label(self) -> str:
        return str(self.status) if self.kind == "status" else self.kind


@dataclass(frozen=True)
class WireUsage:
    """Token counts in Anthropic's terms: ``input_tokens`` excludes the cached tokens.

    OpenAI responses report ``prompt_tokens = input_tokens + cache_read`` with
    ``cached_tokens = cache_read`` (OpenAI has no cache-write count).
    """

    input_tokens: int = 10
    output_tokens: int = 5
    cache_read: int = 0
    cache_write: int = 0


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    flavor: Flavor | None
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    fault: str
    #: when it arrived (time.monotonic)
    at: float = field(default_factory=time.monotonic)

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def api_key(self) -> str | None:
        """The key as sent: ``x-api-key``, or ``Authorization: Bearer`` (openai, anthropic 2.x)."""
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


def last_user_text(body: Any) -> str:
    """The text of the last user message of either wire format ('' if none)."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in reversed(messages or []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = (b for b in content if isinstance(b, dict) and b.get("type") == "text")
            return "".join(str(b.get("text", "")) for b in texts)
    return ""


def echo_answer(body: Any) -> str:
    """The default answer: ``"echo: "`` and the last user message."""
    return "echo: " + last_user_text(body)


class WireServer:
    """A started-on-demand loopback server; use as a context manager.

    ``url`` is the Anthropic base URL (the host root); ``openai_url`` is ``url + "/v1"``.
    """

    #: the request handler class (a subclass serves more endpoints: batch_server.py)
    handler: ClassVar[type[BaseHTTPRequestHandler] | None] = None

    def __init__(
        self,
        *,
        answer: Callable[[Any], str] = echo_answer,
        json_answer: Callable[[Any], Any] | None = None,
        usage: WireUsage | Callable[[Any, str], WireUsage] | None = None,
        latency_s: float = 0.0,
        fault_rates: Mapping[str, float] | None = None,
        seed: int = 0,
        slots: int | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.answer = answer
        #: The structured answer (tool input / JSON content); default ``{"answer": answer(body)}``.
        self.json_answer = json_answer
        self.usage = usage
        self.latency_s = latency_s
        self.slots = slots
        self._slots = _Slots(slots) if slots else None
        #: the rate limit's buckets and counts (None: no limit)
        self.limiter = Limiter(rate_limit) if rate_limit is not None else None
        #: cut answers longer than the request's max_tokens (4 characters a token), as a
        #: real server does, reporting it in the finish / stop reason
        self.honour_max_tokens = False
        self.fault_rates: dict[str, float] = dict(fault_rates or {})
        if sum(self.fault_rates.values()) > 1:
            raise ValueError("fault_rates must add up to at most 1")
        for name in self.fault_rates:
            Fault.parse(name)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._script: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        #: per answered request: its body and the server's own time on it (s), from its
        #: headers read to its answer written
        self._handled: list[tuple[Any, float]] = []
        self._per_model: Counter[str] = Counter()
        self._ok_per_model: Counter[str] = Counter()
        #: per model: requests waiting out their latency now, and the most there were
        self._in_flight: Counter[str] = Counter()
        self._peak: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        #: answer this many requests, then hold every later one unanswered until
        #: ``drop_held()`` (None: no hold): a kill that lands "among the calls" by an event
        self.hold_after: int | None = None
        self._admitted = 0
        self._dropped = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> WireServer:
        """Bind to 127.0.0.1 on a free port and serve in a background thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", 0), self.handler or _Handler)
        httpd.wire = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="wire-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; releases hanging handlers and closes open connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the wire server is not running")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The base URL for the Anthropic SDK (the host root)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """The base URL for the OpenAI SDK."""
        return self.url + "/v1"

    # -- programming ---------------------------------------------------------------------

    def script(self, faults: Iterable[str | int | Fault]) -> WireServer:
        """Append faults, consumed one per request in order; then normal (or random) answers."""
        parsed = [Fault.parse(f) for f in faults]
        with self._lock:
            self._script.extend(parsed)
        return self

    @property
    def pending(self) -> int:
        """Scripted faults not consumed yet."""
        with self._lock:
            return len(self._script)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def requests_per_model(self) -> Counter[str]:
        """Requests received per model id (including those answered with a fault)."""
        with self._lock:
            return Counter(self._per_model)

    @property
    def answered_per_model(self) -> Counter[str]:
        """Requests answered successfully per model id."""
        with self._lock:
            return Counter(self._ok_per_model)

    def reset(self) -> None:
        """Forget recorded requests, counters and the remaining script."""
        with self._lock:
            self._script.clear()
            self._requests.clear()
            self._per_model.clear()
            self._ok_per_model.clear()

    # -- internals ------------------------------------------------------------------------

    def _next_fault(self) -> Fault:
        with self._lock:
            if self._script:
                return self._script.pop(0)
            if self.fault_rates:
                roll = self._rng.random()
                for name, rate in self.fault_rates.items():
                    if roll < rate:
                        return Fault.parse(name)
                    roll -= rate
        return Fault("ok")

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            if request.model is not None:
                self._per_model[request.model] += 1

    def _answered(self, model: str | None) -> None:
        if model is not None:
            with self._lock:
                self._ok_per_model[model] += 1

    def _usage(self, body: Any, text: str) -> WireUsage:
        if isinstance(self.usage, WireUsage):
            return self.usage
        if self.usage is not None:
            return self.usage(body, text)
        prompt = json.dumps(body.get("messages", []) if isinstance(body, dict) else body)
        return WireUsage(max(1, len(prompt) // 4), max(1, len(text) // 4))

    def _cut(self, body: Any, text: str) -> str:
        """``text`` cut to the request's max_tokens when the server honours it."""
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if not self.honour_max_tokens or not isinstance(limit, int):
            return text
        return text[: limit * 4]

    def _structured(self, body: Any) -> Any:
        if self.json_answer is not None:
            return self.json_answer(body)
        return {"answer": self.answer(body)}

    def drop_held(self) -> None:
        """Close the held requests unanswered and stop holding later ones."""
        self.hold_after = None
        self._dropped.set()

    def _admit(self) -> bool:
        """False for a request past ``hold_after``: it waits, unanswered, until the held
        requests are dropped or the server stops."""
        with self._lock:
            if self.hold_after is None or self._admitted < self.hold_after:
                self._admitted += 1
                return True
        while not (self._dropped.wait(0.05) or self._stopping.is_set()):
            pass
        return False

    @contextlib.contextmanager
    def _counted(self, model: str) -> Iterator[None]:
        with self._lock:
            self._in_flight[model] += 1
            self._peak[model] = max(self._peak[model], self._in_flight[model])
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[model] -= 1

    @property
    def handled(self) -> list[tuple[Any, float]]:
        """Per answered request: its body and the server's own time on it (s)."""
        with self._lock:
            return list(self._handled)

    @property
    def peak_in_flight(self) -> dict[str, int]:
        """Per model: the most requests the server held at once (waiting out its latency)."""
        with self._lock:
            return dict(self._peak)

    def _wait(self, seconds: float) -> bool:
        """Sleep without blocking other requests; False if the server stopped meanwhile."""
        return not (seconds > 0 and self._stopping.wait(seconds))

    def reply(self, flavor: Flavor, body: Any, fault: Fault) -> dict[str, Any]:
        """The JSON of a successful answer to ``body``."""
        model = body.get("model", "unknown")
        n = next(self._ids)
        if flavor == "anthropic":
            if body.get("tool_choice") and body.get("tools") and fault.text is None:
                choice = body["tool_choice"]
                name = choice.get("name") or body["tools"][0].get("name", "answer")
                structured = self._structured(body)
                content: list[dict[str, Any]] = [
                    {"type": "tool_use", "id": f"toolu_{n}", "name": name, "input": structured}
                ]
                stop_reason = "tool_use"
                text = json.dumps(structured)
                if self._cut(body, text) != text:  # a tool call cut off: its input is lost
                    content[0]["input"] = {}
                    stop_reason = "max_tokens"
            else:
                text = fault.text if fault.text is not None else self.answer(body)
                stop_reason = "end_turn"
                if self._cut(body, text) != text:
                    text, stop_reason = self._cut(body, text), "max_tokens"
                content = [{"type": "text", "text": text}]
            usage = self._usage(body, text)
            return {
                "id": f"msg_{n:06d}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cache_read_input_tokens": usage.cache_read,
                    "cache_creation_input_tokens": usage.cache_write,
                },
            }
        response_format = body.get("response_format") or {}
        if fault.text is not None:
            text = fault.text
        elif response_format.get("type") in ("json_object", "json_schema"):
            text = json.dumps(self._structured(body))
        else:
            text = self.answer(body)
        finish = "stop"
        if self._cut(body, text) != text:
            text, finish = self._cut(body, text), "length"
        usage = self._usage(body, text)
        prompt_tokens = usage.input_tokens + usage.cache_read
        return {
            "id": f"chatcmpl-{n:06d}",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": prompt_tokens + usage.output_tokens,
                "prompt_tokens_details": {"cached_tokens": usage.cache_read},
            },
        }


def error_body(flavor: Flavor | None, status: int, message: str | None = None) -> dict[str, Any]:
    """The provider's JSON error body for ``status``."""
    text = message or f"simulated {status} from the wire server"
    if flavor == "anthropic":
        kind = _ANTHROPIC_ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        return {"type": "error", "error": {"type": kind, "message": text}}
    kind, code = _OPENAI_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {"error": {"message": text, "type": kind, "param": None, "code": code}}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many clients connect at once under load (default 5)
    block_on_close = False  # stop() must not wait for hanging handlers
    request_queue_size = 128  # a burst of concurrent connections is not turned away
    wire: WireServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes; with Nagle on, the body waits for the
    # client's delayed ACK (about 40 ms per response), which is not the latency asked for
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.wire._lock:
            self.server.wire._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.wire._lock:
            self.server.wire._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``WireServer.requests`` instead."""

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:  # the client went away (timeouts, disconnects)
            pass

    def do_GET(self) -> None:
        wire = self.server.wire
        if self.path == "/props" and wire.slots:
            self._send_json(200, {"total_slots": wire.slots})
            return
        if self.path == "/health":  # as llama.cpp's server, once its model is loaded
            self._send_json(200, {"status": "ok"})
            return
        self._send_json(404, error_body(self._flavor(), 404, f"no route for GET {self.path}"))

    def do_POST(self) -> None:
        wire = self.server.wire
        arrived = time.perf_counter()
        flavor = self._flavor()
        refused = False
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw or b"null")
        except ValueError:
            body = raw.decode("utf-8", "replace")
        valid = isinstance(body, dict) and isinstance(body.get("messages"), list)
        if flavor is None:
            fault = Fault("status", status=404, message=f"no route for POST {self.path}")
        elif not valid:
            fault = Fault("status", status=400, message="the body needs a 'messages' list")
        else:
            admitted, limit_headers = (
                wire.limiter.admit(flavor, body) if wire.limiter else (True, {})
            )
            if admitted:
                fault = wire._next_fault()
                fault = dataclasses.replace(fault, headers={**limit_headers, **fault.headers})
            else:  # answered at once, as the providers do; the headers carry retry-after
                refused = True
                fault = Fault(
                    "status",
                    status=429,
                    retry_after_ms=None,
                    message="rate limit exceeded: slow down",
                    headers=limit_headers,
                )
        headers = {k.lower(): v for k, v in self.headers.items()}
        wire._record(RecordedRequest(flavor, "POST", self.path, headers, body, fault.label))
        model = str(body.get("model")) if isinstance(body, dict) else ""
        if not refused and not (self._take_latency(wire, model) and wire._admit()):
            return
        if fault.kind == "hang" and not wire._wait(fault.hang_s):
            return
        if fault.kind == "status":
            self._send_error(flavor, fault)
        elif fault.kind == "malformed":
            raw_body = fault.text if fault.text is not None else "this is not JSON {"
            self._send(200, raw_body.encode(), {**fault.headers})
        elif fault.kind == "wrong-shape":
            raw_body = fault.text if fault.text is not None else '{"unexpected": true}'
            self._send(200, raw_body.encode(), {**fault.headers})
        elif fault.kind == "disconnect":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self._send_json(200, wire.reply(flavor, body, fault), fault.headers)
            wire._answered(body.get("model"))
            with wire._lock:
                wire._handled.append((body, time.perf_counter() - arrived))

    def _take_latency(self, wire: WireServer, model: str) -> bool:
        """Wait the server's latency (for a slot first, when it has slots); False if the
        server stopped meanwhile."""
        if wire._slots is None:
            with wire._counted(model):
                return wire._wait(wire.latency_s)
        with wire._slots:  # the other requests wait for a free slot
            with wire._counted(model):
                return wire._wait(wire.latency_s)

    def _flavor(self) -> Flavor | None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ANTHROPIC_PATHS:
            return "anthropic"
        if path in OPENAI_PATHS:
            return "openai"
        return None

    def _send_error(self, flavor: Flavor | None, fault: Fault) -> None:
        headers = dict(fault.headers)
        if fault.retry_after_ms is not None and (fault.status == 429 or fault.status >= 500):
            headers.setdefault("retry-after-ms", f"{fault.retry_after_ms:g}")
        if fault.retry_after is not None:
            headers.setdefault("retry-after", fault.retry_after)
        self._send_json(fault.status, error_body(flavor, fault.status, fault.message), headers)

    def _send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(payload).encode(), dict(headers or {}))

    def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", headers.pop("content-type", "application/json"))
        self.send_header("content-length", str(len(data)))
        if self.server.wire._stopping.is_set():
            self.send_header("connection", "close")
            self.close_connection = True
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
