"""Who may talk to us: Twilio request signatures and per-call stream tokens.

- Webhooks (`POST /twiml`, `POST /status`) carry `X-Twilio-Signature`, an HMAC-SHA1 of the
  full public URL plus the sorted form fields, keyed by the account's auth token. The URL must
  be the one Twilio called, which behind a proxy or tunnel is not what the app sees: it is
  built from `TELEPHONY_PUBLIC_URL` when set.
- The Media Streams WebSocket upgrade is signed the same way over its URL with no body; which
  scheme Twilio signs there is undocumented, so both wss:// and https:// forms are accepted.
- Defence in depth: the TwiML we answer carries a per-call token, an HMAC of the CallSid, which
  must come back in `start.customParameters` with that same CallSid. It needs no shared
  state, so any instance behind a load balancer can check it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import RequestValidator

TOKEN_PARAMETER = "token"


def public_base_url(configured: str | None, headers: Mapping[str, str], scheme: str, host: str) -> str:
    """https://host[:port] as Twilio reaches us: the setting, else forwarded headers, else Host."""
    if configured:
        return configured.rstrip("/")
    forwarded_proto = headers.get("x-forwarded-proto", "").split(",")[0].strip()
    forwarded_host = headers.get("x-forwarded-host", "").split(",")[0].strip()
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
    """Per-call tokens: HMAC-SHA256 of the CallSid under a server secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self, call_sid: str) -> str:
        return hmac.new(self._secret, call_sid.encode(), hashlib.sha256).hexdigest()[:32]

    def check(self, call_sid: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.issue(call_sid), token or "")


def secret_from(auth_token: str | None, fallback: bytes) -> bytes:
    """Tokens are keyed by the auth token (shared by every instance) or a per-process secret."""
    return hashlib.sha256(b"telephony-call-token:" + auth_token.encode()).digest() if auth_token else fallback
