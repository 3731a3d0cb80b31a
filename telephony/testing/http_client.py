"""The test kit's HTTP clients, all on one TLS context.

httpx builds a fresh SSL context for every `AsyncClient` it creates, loading certifi's CA
bundle: about 20 ms of CPU, with the event loop held. The emulated Twilio made a client for
every webhook it posted, so a load generator starting 40 calls stalled its own loop 20 ms
per call start, and caller frames it held back that long read as late frames of the server
under test (`bench load`). One context, made once, costs that once."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verification (certifi's CAs), made once per process."""
    return httpx.create_ssl_context()


def http_client(timeout: float) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` that does not build a TLS context of its own."""
    return httpx.AsyncClient(timeout=timeout, verify=tls_context())
