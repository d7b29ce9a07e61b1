"""llama.cpp servers started for a run: one per distinct spec, on a free loopback port.

The process that starts a server owns it (the controller; with ``-n 0`` the only process)
and stops it at the end of the run, at interpreter exit, or by dying (the child watches
its parent, see ``serve``). xdist workers reach the controller's server through the URL
and pid it hands them; they never start one.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ...errors import ProviderError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_POLL_S = 0.05
_STOP_S = 5.0


@dataclass(frozen=True)
class ServerSpec:
    """What a server is started with (two models with equal specs share one server)."""

    gguf: str
    chat_template: str
    use_jinja: bool
    threads: int
    slots: int
    ctx_size: int


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """A running (or starting) llama.cpp server, owned by this process or adopted."""

    def __init__(
        self,
        spec: ServerSpec,
        url: str,
        pid: int,
        process: subprocess.Popen[bytes] | None = None,
        log: BinaryIO | None = None,
    ) -> None:
        self.spec = spec
        self.url = url
        self.pid = pid
        self.process = process
        self.log = log
        self.started = time.monotonic()
        #: seconds from the start to the model loaded, when this process started it
        self.load_s: float | None = None
        self._ready = False

    @classmethod
    def start(cls, spec: ServerSpec) -> LocalServer:
        """Start a server in a child process; returns at once (see :meth:`wait_ready`)."""
        port = free_port()
        # An unnamed file: it goes with the last process holding it, even one killed by
        # SIGKILL, so no run leaves a log behind in the temporary directory.
        log = tempfile.TemporaryFile(prefix="modelroute-llama-")
        payload = json.dumps({**asdict(spec), "port": port})
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest_modelroute.providers.local.serve", payload],
            stdin=subprocess.PIPE,  # its end of file tells the child we are gone
            stdout=log,
            stderr=log,
            start_new_session=True,  # Ctrl-C is pytest's to handle, not the server's
        )
        return cls(spec, f"http://127.0.0.1:{port}", process.pid, process, log)

    def handoff(self) -> dict[str, Any]:
        """What a worker needs to use this server."""
        return {"url": self.url, "pid": self.pid}

    @property
    def owned(self) -> bool:
        return self.process is not None

    def exit_reason(self) -> str | None:
        """Why the server is gone ('exited with status 1', 'was killed by signal 9'), or
        None while it runs."""
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                return None
            return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return "is no longer running"
        except PermissionError:
            pass
        return None

    def log_tail(self, lines: int = 3) -> str:
        """The last lines of the server's log (its own error messages)."""
        if self.log is None or self.log.closed:
            return ""
        # pread: the child writes through the same file offset, which a seek would move
        fd = self.log.fileno()
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        text = data.decode("utf-8", errors="replace").strip().splitlines()
        useful = [line for line in text if line.strip()][-lines:]
        return " | ".join(useful)

    def describe_exit(self, reason: str) -> str:
        tail = self.log_tail()
        return f"the local llama.cpp server at {self.url} {reason}" + (
            f" (its log: {tail})" if tail else ""
        )

    async def wait_ready(self, timeout_s: float) -> float:
        """Wait for ``/health`` to answer 200 (the model loaded); the seconds waited.
        Raises ProviderError when the server exits or does not get ready in time."""
        if self._ready:
            return 0.0
        waited = time.monotonic()
        deadline = waited + timeout_s
        while True:
            reason = self.exit_reason()
            if reason is not None:
                raise ProviderError(self.describe_exit(reason))
            if await asyncio.to_thread(self._healthy):
                self._ready = True
                if self.owned:
                    self.load_s = time.monotonic() - self.started
                return time.monotonic() - waited
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"the local llama.cpp server at {self.url} was not ready after "
                    f"{timeout_s:g} s (loading {Path(self.spec.gguf).name})"
                )
            await asyncio.sleep(_POLL_S)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False  # refused while starting, 503 while loading the model

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the server's slots (a file lock per slot, so xdist workers share
        them; without ``fcntl`` the per-process limit alone applies)."""
        if fcntl is None:
            yield
            return
        delay = 0.002
        while True:
            fd = self._try_slot()
            if fd is not None:
                break
            reason = self.exit_reason()
            if reason is not None:
                raise ProviderError(self.describe_exit(reason))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _slot_paths(self) -> list[Path]:
        port = self.url.rsplit(":", 1)[-1]
        return [
            Path(tempfile.gettempdir()) / f"modelroute-llama-{port}-slot{i}.lock"
            for i in range(self.spec.slots)
        ]

    def _try_slot(self) -> int | None:
        assert fcntl is not None
        for path in self._slot_paths():
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError:
                os.close(fd)
        return None

    def stop(self) -> None:
        """Stop an owned server (closing its stdin ends it; then SIGTERM, then SIGKILL)."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            try:
                if process.stdin is not None:
                    process.stdin.close()
                process.wait(_STOP_S)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait(_STOP_S)
        elif process.stdin is not None:
            process.stdin.close()
        if self.log is not None:
            self.log.close()
        for path in self._slot_paths():
            path.unlink(missing_ok=True)


_lock = threading.Lock()
#: the servers this process started or adopted, by spec
_servers: dict[ServerSpec, LocalServer] = {}


def server_for(spec: ServerSpec) -> LocalServer:
    """This run's server for ``spec``: adopted from the controller, or started now."""
    with _lock:
        server = _servers.get(spec)
        if server is None:
            server = _servers[spec] = LocalServer.start(spec)
        return server


def adopt(spec: ServerSpec, info: dict[str, Any]) -> None:
    """An xdist worker: use the controller's server for ``spec``."""
    with _lock:
        _servers.setdefault(spec, LocalServer(spec, str(info["url"]), int(info["pid"])))


def stop_all() -> None:
    """Stop every server this process started and forget the adopted ones."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()


atexit.register(stop_all)
