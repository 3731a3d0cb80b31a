"""`telephony serve --workers N`: N server processes on one listening socket, one per core.

The parent binds the port (a SO_REUSEPORT socket per worker) and forks the workers; the kernel hands each new connection
to one of them, and a call (one WebSocket) stays with the worker that accepted it. SIGTERM
(or SIGINT) is passed to every worker, each drains its own calls, and the parent exits 0 once
all of them did; a worker that dies on its own is replaced. What must be shared lives in the
call history store (calls, status callbacks: TELEPHONY_DATABASE_URL, or the SQLite file all
workers open), and /metrics adds the workers up (prometheus-client's multiprocess mode).
Per worker: live calls, the duplicate-stream check and the single-use memory of stream
tokens (a replayed token could open one call on each worker within its 30 s lifetime).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_shared_metrics() -> str:
    """Before anything imports prometheus_client: workers write their metrics here."""
    directory = tempfile.mkdtemp(prefix="telephony-metrics-")
    os.environ[MULTIPROCESS_ENV] = directory
    return directory


def run_workers(sockets: list[socket.socket], work: Callable[[socket.socket], int]) -> int:
    """Fork one worker per socket (all bound to one port with SO_REUSEPORT, so the kernel
    spreads new connections evenly), each running `work(its socket)` and returning an exit
    code; returns the parent's. Blocks until every worker has exited after a signal."""
    count = len(sockets)
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def spawn(number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                for other in sockets:
                    if other is not sockets[number]:
                        other.close()
                code = work(sockets[number])
            finally:
                os._exit(code)
        children[pid] = number

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for number in range(count):
        spawn(number)
    print(f"{count} workers on one port (pids {', '.join(map(str, children))})", file=sys.stderr, flush=True)
    worst = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        which = children.pop(pid) if pid in children else None
        code = os.waitstatus_to_exitcode(status)
        if which is None:
            continue
        if stopping:
            worst = max(worst, code if code >= 0 else 128 - code)
        else:  # died on its own: keep the number of workers
            print(f"worker {which} (pid {pid}) exited with {code}: starting another", file=sys.stderr, flush=True)
            time.sleep(0.5)
            spawn(which)
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory and os.path.basename(directory).startswith("telephony-metrics-"):
        shutil.rmtree(directory, ignore_errors=True)
    return worst
