"""The child process that runs llama.cpp's server for a run (``python -m`` this module).

xllamacpp runs the server in threads of the process that creates it, and installs its own
SIGINT/SIGTERM handlers there: inside pytest it would take Ctrl-C from pytest and die
only with it. In a child of its own it cannot, and it dies with its parent whatever
happens to the parent: when its standard input (a pipe only the parent holds) reaches
end of file, which the kernel makes happen when the parent exits, even by SIGKILL; on
Linux also through PR_SET_PDEATHSIG.

Argument: the server spec as JSON (see ``server.ServerSpec``). Prints ``ready URL`` once
the model is loaded; llama.cpp's own log goes to standard error. When llama.cpp cannot
start (a file that is no GGUF, a template it cannot parse), its ``E`` lines say why, then
``modelroute: the server did not start: ...``, and the process exits with status 1.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import threading
import time
from typing import Any


def die_with_parent() -> None:
    """Exit at once when the parent goes away (stdin EOF; on Linux PDEATHSIG too)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    parent = os.getppid()

    def watch() -> None:
        while sys.stdin.buffer.read(65536):
            pass
        os._exit(0)  # no clean-up: the process holds nothing that outlives it

    if parent == 1:  # the parent died before we got here
        os._exit(0)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def let_llama_log_its_reason(limit_s: float = 3.0) -> None:
    """Wait (at most ``limit_s``) until llama.cpp's own log has an ``E`` line: it logs
    from a thread of its own, and the exit that follows would drop what that thread had
    not written yet (under load, the reason itself: "invalid magic characters")."""
    try:
        fd = sys.stderr.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a terminal or a pipe: nothing to read
            return
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            logged = os.pread(fd, os.fstat(fd).st_size, 0)
        except OSError:
            return
        if any(line[:1].isdigit() and b" E " in line for line in logged.splitlines()):
            return
        time.sleep(0.05)


def server_params(spec: dict[str, Any]) -> Any:
    """xllamacpp's CommonParams for ``spec``."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = spec["gguf"]
    params.port = int(spec["port"])
    params.n_parallel = int(spec["slots"])
    params.n_ctx = int(spec["ctx_size"]) * int(spec["slots"])
    params.cpuparams.n_threads = int(spec["threads"])
    params.cpuparams_batch.n_threads = int(spec["threads"])
    params.chat_template = spec["chat_template"]
    # a built-in template's name (chatml, llama3...) is taken as template text under Jinja
    params.use_jinja = bool(spec["use_jinja"])
    params.endpoint_props = True  # /props says total_slots
    return params


def main(argv: list[str]) -> int:
    die_with_parent()
    spec = json.loads(argv[0])
    import xllamacpp

    try:
        server = xllamacpp.Server(server_params(spec))
    except Exception as exc:
        let_llama_log_its_reason()
        print(f"modelroute: the server did not start: {exc}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # not a normal exit: the interpreter's shutdown would wait for the lock on stdin,
        # which the watcher thread holds while it reads, and abort (signal 6)
        os._exit(1)
    print("ready", server.listening_address, flush=True)
    threading.Event().wait()  # serve until the parent goes (see die_with_parent)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
