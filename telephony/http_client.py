"""The one TLS context behind every HTTP client the service makes (HTTP tools, event
webhooks, call lists, the test kit).

httpx builds a fresh SSL context for each `AsyncClient`, loading certifi's CA bundle: about
20 ms of CPU with the event loop held. On a server carrying 40 calls that is 20 ms in which no
call's audio moves; in `bench load`'s generator it made every call start look like late
frames of the server under test. Made once per process, it costs that once."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verification (certifi's CAs, `SSL_CERT_FILE` honoured), made once."""
    return httpx.create_ssl_context()


def http_client(timeout: float) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` that does not build a TLS context of its own."""
    return httpx.AsyncClient(timeout=timeout, verify=tls_context())
