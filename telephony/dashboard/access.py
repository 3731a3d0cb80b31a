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
