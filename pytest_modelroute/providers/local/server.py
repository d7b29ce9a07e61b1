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
import re
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


#: a llama.cpp log line at level E: "0.00.026.142 E gguf_init_from_reader: invalid magic..."
_ERROR_LINE = re.compile(r"^\d[\d.]* E (.+)$")


def errors_in(lines: list[str]) -> list[str]:
    """llama.cpp's error lines among ``lines``, without their time and level, each once."""
    found: dict[str, None] = {}
    for line in lines:
        match = _ERROR_LINE.match(line)
        if match:
            found.setdefault(" ".join(match.group(1).split()), None)
    return list(found)


def ended(code: int) -> str:
    """How a process ended, from its exit code as Popen gives it (-N: signal N)."""
    return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"


def died(code: int) -> str:
    """:func:`ended`, short: 'signal 9', 'exit status 1'."""
    return f"signal {-code}" if code < 0 else f"exit status {code}"


def adopted_exit(pid: int) -> str | None:
    """How another process's child ``pid`` (the controller's server) ended, or None while
    it runs. Until its parent reaps it, a dead process is a zombie (state Z), which
    ``kill(pid, 0)`` still finds; /proc says so, and its wait status (0 when we may not
    read it)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return "is no longer running"  # reaped by its parent
    except (OSError, IndexError):  # no /proc: a live zombie is taken as running
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "is no longer running"
        except PermissionError:
            pass
        return None
    if fields[0] not in ("Z", "X"):
        return None
    status = int(fields[49]) if len(fields) > 49 else 0
    if status & 0x7F:
        return ended(-(status & 0x7F))
    return ended(status >> 8) if status else "is no longer running"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SlotLocks:
    """A server's slots as byte-range locks on one file: byte ``port * 2**16 + i`` is
    slot ``i``. The locks go with the process holding them, even one killed by SIGKILL,
    and the file is one per cache folder, whatever the run or its end.

    POSIX record locks belong to the process, not to the descriptor: the slots this
    process holds are kept here too (its calls never share one), and its one descriptor
    stays open (closing any would release them all)."""

    def __init__(self, path: Path, port: int, slots: int) -> None:
        self.path = path
        self.base = port << 16
        self.slots = slots
        self._fd: int | None = None
        self._held: set[int] = set()
        self._guard = threading.Lock()

    def acquire(self) -> int | None:
        """A free slot, now held; None when every slot is held."""
        assert fcntl is not None
        with self._guard:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            for slot in range(self.slots):
                if slot in self._held:
                    continue
                try:
                    fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self.base + slot)
                except OSError:
                    continue
                self._held.add(slot)
                return slot
        return None

    def release(self, slot: int) -> None:
        assert fcntl is not None and self._fd is not None
        with self._guard:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self.base + slot)
            self._held.discard(slot)


class LocalServer:
    """A running (or starting) llama.cpp server, owned by this process or adopted."""

    def __init__(
        self,
        spec: ServerSpec,
        url: str,
        pid: int,
        process: subprocess.Popen[bytes] | None = None,
        log: BinaryIO | None = None,
        locks: Path | None = None,
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
        #: the file of its slots' locks (see SlotLocks), when other processes share it
        self.lock_file = locks if fcntl is not None else None
        port = int(url.rsplit(":", 1)[-1])
        self.locks = SlotLocks(locks, port, spec.slots) if self.lock_file else None

    @classmethod
    def start(cls, spec: ServerSpec, locks: Path | None = None) -> LocalServer:
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
        return cls(spec, f"http://127.0.0.1:{port}", process.pid, process, log, locks)

    def handoff(self) -> dict[str, Any]:
        """What a worker needs to use this server."""
        locks = str(self.lock_file) if self.lock_file else None
        return {"url": self.url, "pid": self.pid, "locks": locks}

    @property
    def owned(self) -> bool:
        return self.process is not None

    def exit_reason(self) -> str | None:
        """Why the server is gone ('exited with status 1', 'was killed by signal 9'), or
        None while it runs."""
        if self.process is not None:
            code = self.process.poll()
            return None if code is None else ended(code)
        return adopted_exit(self.pid)

    async def gone_within(self, seconds: float) -> str | None:
        """:meth:`exit_reason`, waiting up to ``seconds`` for the server to be gone: a
        killed server's sockets close before its exit shows."""
        deadline = time.monotonic() + seconds
        while (reason := self.exit_reason()) is None and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_S)
        return reason

    def log_lines(self) -> list[str]:
        """The server's log so far, its non-empty lines."""
        if self.log is None or self.log.closed:
            return []
        # pread: the child writes through the same file offset, which a seek would move
        fd = self.log.fileno()
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        text = data.decode("utf-8", errors="replace").splitlines()
        return [line.strip() for line in text if line.strip()]

    def log_tail(self, lines: int = 3, *, last: bool = True) -> str:
        """What the server's log says went wrong: llama.cpp's first error lines (the
        cause comes first, its consequences after) and ours; else, with ``last``, its
        last lines, else nothing."""
        logged = self.log_lines()
        errors = errors_in(logged)
        ours = [line for line in logged if line.startswith("modelroute:")]
        picked = [*errors[: lines - len(ours[-1:])], *ours[-1:]] if errors or ours else []
        return " | ".join(picked or (logged[-lines:] if last else []))

    def start_failure(self) -> tuple[str, str]:
        """Why a server that exited while starting did not start: ('template' or 'model',
        llama.cpp's own first error line)."""
        errors = errors_in(self.log_lines())
        template = [e for e in errors if "chat template" in e or "chat_template" in e]
        if template:
            return "template", template[0]
        return "model", errors[0] if errors else self.log_tail()

    def describe_exit(self, reason: str) -> str:
        """The error of a call the server's end stopped; its log's error lines, if any
        (a killed server's last lines are its routine work, not the cause)."""
        tail = self.log_tail(last=not reason.startswith("was killed"))
        return f"the local llama.cpp server at {self.url} {reason}" + (
            f" (its log: {tail})" if tail else ""
        )

    async def wait_ready(self, timeout_s: float) -> float:
        """Wait for ``/health`` to answer 200 (the model loaded); the seconds waited.
        Raises ProviderError when the server exits or does not get ready in time."""
        waited = time.monotonic()
        deadline = waited + timeout_s
        while not await asyncio.to_thread(self._ready_by, deadline, timeout_s):
            await asyncio.sleep(_POLL_S)
        return time.monotonic() - waited

    def wait_started(self, timeout_s: float) -> None:
        """:meth:`wait_ready`, blocking: the process that started it, before the calls."""
        deadline = time.monotonic() + timeout_s
        while not self._ready_by(deadline, timeout_s):
            time.sleep(_POLL_S)

    def _ready_by(self, deadline: float, timeout_s: float) -> bool:
        """One look: whether it is ready; raises ProviderError when it exited, or is not
        ready by ``deadline``."""
        if self._ready:
            return True
        reason = self.exit_reason()
        if reason is not None:
            raise ProviderError(self.describe_exit(reason))
        if self._healthy():
            self._ready = True
            if self.owned:
                self.load_s = time.monotonic() - self.started
            return True
        if time.monotonic() > deadline:
            raise ProviderError(
                f"the local llama.cpp server at {self.url} was not ready after "
                f"{timeout_s:g} s (loading {Path(self.spec.gguf).name})"
            )
        return False

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False  # refused while starting, 503 while loading the model

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the server's slots, shared with the other processes of the run
        (xdist workers) through :class:`SlotLocks`; with none, this process's limit alone
        applies (it is the only one calling)."""
        if self.locks is None:
            yield
            return
        delay = 0.002
        while (slot := self.locks.acquire()) is None:
            reason = self.exit_reason()
            if reason is not None:
                raise ProviderError(self.describe_exit(reason))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            self.locks.release(slot)

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


_lock = threading.Lock()
#: the servers this process started or adopted, by spec
_servers: dict[ServerSpec, LocalServer] = {}


def server_for(spec: ServerSpec, locks: Path | None = None) -> LocalServer:
    """This run's server for ``spec``: adopted from the controller, or started now (its
    slots' locks in ``locks``, when processes share it)."""
    with _lock:
        server = _servers.get(spec)
        if server is None:
            server = _servers[spec] = LocalServer.start(spec, locks)
        return server


def adopt(spec: ServerSpec, info: dict[str, Any]) -> LocalServer:
    """An xdist worker: use the controller's server for ``spec``."""
    with _lock:
        locks = Path(info["locks"]) if info.get("locks") else None
        server = LocalServer(spec, str(info["url"]), int(info["pid"]), locks=locks)
        return _servers.setdefault(spec, server)


def stop_all() -> None:
    """Stop every server this process started and forget the adopted ones."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()


atexit.register(stop_all)
