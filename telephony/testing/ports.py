"""Ports for servers a test or a bench starts in another process (which must be told a port).

A port the kernel hands out for port 0 comes from the ephemeral range, which every outgoing
connection on the machine also draws its source port from: between our probe and the child's
bind, a client socket of another test worker can take it ("Address already in use", seen on
a busy machine). So these come from below that range, from a band of its own per pytest-xdist
worker, each handed out again only once the band has gone round.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

BAND_START, BAND_SIZE, BANDS = 20000, 1500, 8
"""Ports 20000-31999: under Linux's default ephemeral range (32768-60999)."""


def _band() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % BANDS if worker.isdigit() else 0
    start = BAND_START + index * BAND_SIZE
    return range(start, start + BAND_SIZE)


_candidates = itertools.cycle(random.Random(os.getpid()).sample(_band(), BAND_SIZE))


def free_port() -> int:
    """A loopback port free now: not one the kernel is about to give a client socket, nor
    one this process handed out lately."""
    for port in itertools.islice(_candidates, BAND_SIZE):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {_band()}")
