"""Dial out: `telephony dial +15551234567` asks Twilio to call a number and connect the
answered call to our server's /twiml (the same path as incoming calls), then follows the
call's progress as Twilio reports it to our /status callback."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from rich.console import Console

from telephony.settings import Settings
from telephony.twilio.rest import TwilioRest

FINAL_STATUSES = {"completed", "busy", "failed", "no-answer", "canceled"}


@dataclass(frozen=True)
class DialRequest:
    to: str
    from_: str
    server: str
    voice: str | None = None
    instructions: str | None = None
    greeting: str | None = None
    vad: str | None = None
    agent: str | None = None
    """One of the server's agents, by name (only the name travels)."""
    context: str | None = None
    """About this call, added to the agent's instructions (a call list's own columns)."""
    detect_machines: bool = True
    """Ask Twilio whether a person or a machine answered (asynchronously: a person waits for nothing)."""

    def webhook_url(self) -> str:
        fields = {
            "agent": self.agent,
            "voice": self.voice,
            "instructions": self.instructions,
            "greeting": self.greeting,
            "vad": self.vad,
            "context": self.context,
        }
        query = {k: v for k, v in fields.items() if v}
        return f"{self.server.rstrip('/')}/twiml" + (f"?{urlencode(query)}" if query else "")


def check_number(number: str, what: str) -> str:
    digits = number.strip()
    if not (digits.startswith("+") and digits[1:].isdigit() and 8 <= len(digits) <= 16):
        raise ValueError(f"{what} must be an E.164 number such as +15551234567, not {number!r}")
    return digits


async def place_call(settings: Settings, request: DialRequest) -> str:
    """Start the call; returns its CallSid."""
    if not settings.twilio_account_sid or settings.twilio_auth_token is None:
        raise ValueError("set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to dial out")
    rest = TwilioRest(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(), api_base=settings.twilio_api_base)
    return await rest.dial(
        to=request.to,
        from_=request.from_,
        url=request.webhook_url(),
        status_callback=f"{request.server.rstrip('/')}/status",
        time_limit_s=int(settings.max_call_seconds),
        machine_callback=f"{request.server.rstrip('/')}/amd" if request.detect_machines else None,
    )


class FollowError(Exception):
    """Following the call cannot work: the server refuses us, or has never heard of it."""


async def follow_call(
    settings: Settings,
    server: str,
    call_sid: str,
    console: Console,
    timeout_s: float = 3600.0,
    unknown_for_s: float = 60.0,
    poll_s: float = 0.5,
) -> str:
    """Print the call's statuses as our server receives them; returns the final one.

    Raises `FollowError` on a 401 (the server wants other credentials) and when the server
    has known nothing of the call for `unknown_for_s` (Twilio's status callbacks do not
    reach it, or reach another instance)."""
    auth = None
    if settings.twilio_account_sid and settings.twilio_auth_token is not None:
        auth = (settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value())
    seen = 0
    last = "unknown"
    started = time.monotonic()
    known = False
    url = f"{server.rstrip('/')}/calls/{call_sid}"
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < started + timeout_s:
            try:
                response = await client.get(url, auth=auth)
            except httpx.HTTPError as exc:
                console.print(f"[yellow]cannot reach {server}: {type(exc).__name__} {exc}[/yellow]")
                response = None
            if response is not None and response.status_code == 401:
                raise FollowError(
                    f"{server} refused our credentials (HTTP 401): set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to the server's own"
                )
            if response is not None and response.status_code == 404 and not known and time.monotonic() > started + unknown_for_s:
                raise FollowError(
                    f"{server} has heard nothing of {call_sid} for {unknown_for_s:.0f} s (HTTP 404): Twilio's status callbacks "
                    "go to TELEPHONY_PUBLIC_URL/status, so check that it is this server and reachable"
                )
            if response is not None and response.status_code == 200:
                known = True
                body = response.json()
                for entry in body.get("statuses", [])[seen:]:
                    last = entry.get("CallStatus", "?")
                    console.print(f"  {time.strftime('%H:%M:%S')}  {last}")
                seen = len(body.get("statuses", []))
                if last in FINAL_STATUSES:
                    if body.get("transcript_text"):
                        console.print(body["transcript_text"], markup=False)
                    return last
            await asyncio.sleep(poll_s)
    return last
