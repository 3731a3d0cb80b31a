"""Twilio's REST API through the twilio library: dial out, hang up, redirect a live call.

The twilio client is blocking (requests), so every call runs in a worker thread, never on
the event loop. `api_base` points the client at another host (a local stand-in in tests, or
a proxy) by rewriting request URLs in the library's own HTTP client. The client (twilio.rest
and requests: 16 MB and 230 modules) is made on first use: a server whose calls never hang
up, transfer or dial through the REST API never loads it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from twilio.base.exceptions import TwilioRestException

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"
CALL_NOT_IN_PROGRESS = 21220  # "Call is not in-progress. Cannot redirect."
NOT_FOUND = 20404


class TwilioRestError(RuntimeError):
    """A REST request failed; the message is safe to show to the model and in logs."""


def _make_client(account_sid: str, auth_token: str, api_base: str | None, timeout: float) -> Any:
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    class RebasedHttpClient(TwilioHttpClient):
        def request(self, method, url, *args, **kwargs):
            if url.startswith(TWILIO_API) and api_base:
                url = api_base.rstrip("/") + url[len(TWILIO_API) :]
            return super().request(method, url, *args, **kwargs)

    http_client = RebasedHttpClient(timeout=timeout) if api_base else TwilioHttpClient(timeout=timeout)
    return Client(account_sid, auth_token, http_client=http_client)


class TwilioRest:
    """The few REST calls the product makes, each run in a thread."""

    def __init__(self, account_sid: str, auth_token: str, api_base: str | None = None, timeout: float = 10.0) -> None:
        self._credentials = (account_sid, auth_token, api_base, timeout)
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _make_client(*self._credentials)
        return self._client

    async def dial(
        self,
        to: str,
        from_: str,
        url: str,
        status_callback: str | None = None,
        events: Sequence[str] = ("initiated", "ringing", "answered", "completed"),
        timeout_s: int = 30,
        time_limit_s: int | None = None,
        machine_callback: str | None = None,
    ) -> str:
        """Place a call; Twilio fetches TwiML from `url` once it is answered. Returns the CallSid.
        `machine_callback`: ask for asynchronous answering-machine detection with the end of the
        greeting (`DetectMessageEnd`), its result POSTed there (`AnsweredBy`)."""
        kwargs: dict[str, object] = {"to": to, "from_": from_, "url": url, "method": "POST", "timeout": timeout_s}
        if machine_callback:
            kwargs.update(
                machine_detection="DetectMessageEnd",
                async_amd="true",
                async_amd_status_callback=machine_callback,
                async_amd_status_callback_method="POST",
            )
        if status_callback:
            kwargs.update(status_callback=status_callback, status_callback_event=list(events), status_callback_method="POST")
        if time_limit_s:
            kwargs["time_limit"] = time_limit_s
        call = await self._run(lambda: self.client.calls.create(**kwargs), f"dial {to}")
        return str(call.sid)

    async def hang_up(self, call_sid: str) -> None:
        """Complete the call. A call that already ended (20404) counts as success."""
        try:
            await self._run(lambda: self.client.calls(call_sid).update(status="completed"), "hang up")
        except TwilioRestError as exc:
            if getattr(exc, "code", None) == NOT_FOUND:
                return
            raise

    async def redirect(self, call_sid: str, twiml: str) -> None:
        """Replace the live call's TwiML (this ends its media stream)."""
        await self._run(lambda: self.client.calls(call_sid).update(twiml=twiml), "redirect")

    async def account_status(self) -> str:
        """The account's status ("active", "suspended", "closed"); proves the credentials."""
        account = await self._run(lambda: self.client.api.v2010.accounts(self.client.account_sid).fetch(), "read the account")
        return str(account.status)

    async def voice_webhook(self, phone_number: str) -> tuple[str, str] | None:
        """(voice URL, method) of one of the account's numbers; None if it has no such number."""
        numbers = await self._run(lambda: self.client.incoming_phone_numbers.list(phone_number=phone_number, limit=1), "look up the number")
        if not numbers:
            return None
        return str(numbers[0].voice_url or ""), str(numbers[0].voice_method or "POST")

    async def _run(self, request, what: str):
        try:
            return await asyncio.to_thread(request)
        except TwilioRestException as exc:
            error = TwilioRestError(f"Twilio refused to {what}: HTTP {exc.status} code {exc.code}: {exc.msg}")
            error.code = exc.code  # type: ignore[attr-defined]
            raise error from None
        except Exception as exc:  # network errors from requests
            raise TwilioRestError(f"could not reach Twilio to {what}: {type(exc).__name__}") from None
