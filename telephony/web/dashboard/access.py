"""Who may see call history, recordings and the browser phone: requests from this machine,
or anyone with the dashboard credentials (TELEPHONY_DASHBOARD_CREDENTIALS, user:password;
the Twilio account SID and auth token work too, for `telephony dial --follow`).

"From this machine" means a loopback peer with no forwarding header: a tunnel or reverse
proxy on the same host forwards strangers' requests from 127.0.0.1, and says so in
X-Forwarded-For (nginx needs `proxy_set_header X-Forwarded-For ...`), so those need the
credentials like anyone else.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip", "cf-connecting-ip", "x-forwarded-host", "true-client-ip")


def is_local(peer: str | None, headers: Mapping[str, str], trusted_proxies: Sequence[str] = ()) -> bool:
    if not peer or peer in trusted_proxies or "*" in trusted_proxies:
        return False
    try:
        loopback = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False
    return loopback and not any(name in headers for name in FORWARDING_HEADERS)


def basic_credentials(headers: Mapping[str, str]) -> tuple[str, str] | None:
    header = headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


def credentials_match(given: tuple[str, str] | None, accepted: Sequence[tuple[str, str]]) -> bool:
    if given is None:
        return False
    ok = False
    for user, password in accepted:
        if password:  # compare against every pair, so timing says nothing about which
            ok |= hmac.compare_digest(given[0], user) & hmac.compare_digest(given[1], password)
    return ok


class DashboardAccess:
    """The rule above for one server: `allows(request)`, and the 401 to answer otherwise."""

    def __init__(self, settings: Any, auth_token: str | None, metrics: Any) -> None:
        self.trusted_proxies = settings.trusted_proxies
        self.metrics = metrics
        self.accepted: list[tuple[str, str]] = []
        if settings.dashboard_credentials is not None:
            user, _, password = settings.dashboard_credentials.get_secret_value().partition(":")
            self.accepted.append((user, password))
        if settings.twilio_account_sid and auth_token:
            self.accepted.append((settings.twilio_account_sid, auth_token))

    def allows(self, request: Request) -> bool:
        peer = request.client.host if request.client else None
        if is_local(peer, request.headers, self.trusted_proxies):
            return True
        return credentials_match(basic_credentials(request.headers), self.accepted)

    def refused(self) -> JSONResponse:
        self.metrics.refused.labels("dashboard_auth").inc()
        return JSONResponse({"detail": "dashboard credentials required"}, 401, {"WWW-Authenticate": 'Basic realm="telephony"'})
