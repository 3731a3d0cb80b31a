"""Who may talk to us: Twilio request signatures and per-call stream tokens.

- Webhooks (`POST /twiml`, `POST /status`) carry `X-Twilio-Signature`, an HMAC-SHA1 of the
  full public URL plus the sorted form fields, keyed by the account's auth token. The URL must
  be the one Twilio called, which behind a proxy or tunnel is not what the app sees: it is
  built from `TELEPHONY_PUBLIC_URL` when set.
- The Media Streams WebSocket upgrade is signed the same way over its URL with no body; which
  scheme Twilio signs there is undocumented, so both wss:// and https:// forms are accepted.
- Defence in depth: the TwiML we answer carries a per-call token, an HMAC of the CallSid and
  the time, which must come back in `start.customParameters` with that same CallSid, within
  seconds, once (`CallTokens`). The upgrade signature alone covers only the URL, so it can
  be replayed; the token cannot.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import RequestValidator

from telephony.twilio.media_streams import TOKEN_PARAMETER

__all__ = ["TOKEN_PARAMETER", "CallTokens", "TwilioSignatures", "public_base_url", "secret_from", "websocket_url"]


def public_base_url(
    configured: str | None,
    headers: Mapping[str, str],
    scheme: str,
    host: str,
    peer: str | None = None,
    trusted_proxies: Sequence[str] = (),
) -> str:
    """https://host[:port] as Twilio reaches us: the setting, else the forwarded headers of a
    trusted proxy (`peer` in `trusted_proxies`, or "*"), else the Host header. Forwarded
    headers from anyone else are ignored: a client could otherwise choose the URL its own
    signature is checked against."""
    if configured:
        return configured.rstrip("/")
    trusted = "*" in trusted_proxies or (peer is not None and peer in trusted_proxies)
    forwarded_proto = headers.get("x-forwarded-proto", "").split(",")[0].strip() if trusted else ""
    forwarded_host = headers.get("x-forwarded-host", "").split(",")[0].strip() if trusted else ""
    scheme = forwarded_proto or scheme
    if scheme in ("ws", "wss"):
        scheme = "https" if scheme == "wss" else "http"
    return f"{scheme}://{forwarded_host or headers.get('host') or host}"


def websocket_url(base_url: str, path: str) -> str:
    """The wss:// (or ws:// for plain http) URL of `path` under the public base URL."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, "", ""))


class TwilioSignatures:
    """Checks `X-Twilio-Signature` with the twilio library's RequestValidator."""

    def __init__(self, auth_token: str) -> None:
        if not auth_token:
            raise ValueError("an auth token is required to check Twilio signatures")
        self._validator = RequestValidator(auth_token)

    def webhook_ok(self, url: str, form: Mapping[str, str], signature: str | None) -> bool:
        return bool(signature) and self._validator.validate(url, dict(form), signature)

    def websocket_ok(self, wss_url: str, signature: str | None) -> bool:
        if not signature:
            return False
        parts = urlsplit(wss_url)
        https_url = urlunsplit(("https" if parts.scheme == "wss" else "http",) + tuple(parts)[1:])
        return any(self._validator.validate(url, {}, signature) for url in (wss_url, https_url))

    def sign(self, url: str, form: Mapping[str, str] | None = None) -> str:
        """The signature Twilio would send (for emulators and tests)."""
        return self._validator.compute_signature(url, dict(form or {}))


class CallTokens:
    """Per-call stream tokens: `<issued>.<HMAC-SHA256 of CallSid and issued time>`.

    A token is good for one stream, for `ttl_s` after the webhook answered (Twilio opens the
    stream within a second or two), and only with the CallSid it was issued for: a captured
    upgrade signature plus a `start` message replayed later opens nothing. The signature
    needs no shared state, so any instance can check it; "used" is remembered here per process
    and, with a call store, across every worker and instance (`telephony.store.claims`).
    """

    def __init__(self, secret: bytes, ttl_s: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self.ttl_s = ttl_s
        self._clock = clock
        self._used: collections.OrderedDict[str, float] = collections.OrderedDict()

    def _mac(self, call_sid: str, issued: int) -> str:
        return hmac.new(self._secret, f"{call_sid}:{issued}".encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, call_sid: str) -> str:
        issued = int(self._clock())
        return f"{issued:x}.{self._mac(call_sid, issued)}"

    def check(self, call_sid: str, token: str | None) -> str | None:
        """None when `token` was issued for this CallSid and is still fresh, else why not
        (nothing is spent: `redeem` does that here, the shared store across processes)."""
        issued_hex, _, mac = (token or "").partition(".")
        try:
            issued = int(issued_hex, 16)
        except ValueError:
            return "stream token missing or malformed"
        if not hmac.compare_digest(self._mac(call_sid, issued), mac):
            return "stream token does not match the CallSid of the signed webhook"
        now = self._clock()
        if not -5 <= now - issued <= self.ttl_s:  # a few seconds of clock skew between instances
            return f"stream token expired ({now - issued:.0f} s old; Twilio connects within seconds)"
        return None

    def expires_at(self, token: str) -> float:
        return int(token.partition(".")[0], 16) + self.ttl_s + 5

    def redeem(self, call_sid: str, token: str | None) -> str | None:
        """None when `token` opens this stream (and is now spent), else why not."""
        if (problem := self.check(call_sid, token)) is not None:
            return problem
        issued = int((token or "").partition(".")[0], 16)
        now = self._clock()
        while self._used and next(iter(self._used.values())) < now:
            self._used.popitem(last=False)
        if token in self._used:
            return "stream token already used (a replayed stream)"
        self._used[token or ""] = issued + self.ttl_s + 5
        return None


def secret_from(auth_token: str | None, fallback: bytes) -> bytes:
    """Tokens are keyed by the auth token (shared by every instance) or a per-process secret."""
    return hashlib.sha256(b"telephony-call-token:" + auth_token.encode()).digest() if auth_token else fallback
