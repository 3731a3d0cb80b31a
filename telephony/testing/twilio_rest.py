"""A local stand-in for Twilio's REST API (Calls, the account, its numbers), for tests and
offline dial-out.

It records every request, answers like api.twilio.com (JSON call resources, Twilio error
bodies), checks HTTP basic auth, and can be told to fail. Point `telephony.twilio.rest.
TwilioRest(api_base=...)` (or TELEPHONY_TWILIO_API_BASE) at `base_url`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from telephony.web.server import running_server


@dataclass(frozen=True)
class RestRequest:
    at: float  # time.monotonic()
    method: str
    path: str
    form: dict[str, str]

    @property
    def call_sid(self) -> str | None:
        tail = self.path.rsplit("/", 1)[-1]
        return tail[: -len(".json")] if tail.startswith("CA") else None


@dataclass
class FakeTwilioRest:
    account_sid: str
    auth_token: str
    requests: list[RestRequest] = field(default_factory=list)
    fail_updates_with: tuple[int, int] | None = None
    """(HTTP status, Twilio error code) to answer every call update with."""
    numbers: dict[str, str] = field(default_factory=dict)
    """The account's phone numbers (E.164) and each one's voice webhook URL."""
    base_url: str = ""
    on_create: Callable[[str, dict[str, str]], None] | None = None
    """Told of every call placed (its CallSid and form): `telephony.testing.phone_network`
    plays who answers."""
    on_update: Callable[[str, dict[str, str]], tuple[int, int] | None] | None = None
    """Told of every update to a call (a redirect, a hang-up); may refuse it with (HTTP
    status, Twilio error code), as Twilio does for a call that has ended."""
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def updates(self, call_sid: str | None = None) -> list[RestRequest]:
        return [r for r in self.requests if r.call_sid and (call_sid is None or r.call_sid == call_sid)]

    def app(self) -> FastAPI:
        app = FastAPI()
        prefix = "/2010-04-01/Accounts/{account}"

        def error(status: int, code: int, message: str) -> JSONResponse:
            return JSONResponse(
                {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}, status
            )

        def authorised(request: Request) -> bool:
            expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
            return request.headers.get("authorization") == expected

        def refused(request: Request, account: str, form: dict[str, str]) -> JSONResponse | None:
            """Record the request; the 401 Twilio gives for other credentials, else None."""
            self.requests.append(RestRequest(time.monotonic(), request.method, request.url.path, form))
            if not authorised(request) or account != self.account_sid:
                return error(401, 20003, "Authenticate")
            return None

        def resource(sid: str, status: str, form: dict[str, str]) -> dict[str, object]:
            return {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": form.get("To"),
                "from": form.get("From"),
                "status": status,
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json",
            }

        @app.post(prefix + "/Calls.json")
        async def create(account: str, request: Request) -> JSONResponse:
            form = {k: str(v) for k, v in (await request.form()).items()}
            if (refusal := refused(request, account, form)) is not None:
                return refusal
            if not form.get("To") or not (form.get("Url") or form.get("Twiml")):
                return error(400, 21201, "No 'To' number or no 'Url'/'Twiml' is specified")
            sid = "CA" + hashlib.sha256(f"{next(self._ids)}".encode()).hexdigest()[:32]
            if self.on_create is not None:
                self.on_create(sid, form)
            return JSONResponse(resource(sid, "queued", form), 201)

        @app.post(prefix + "/Calls/{call_sid}.json")
        async def update(account: str, call_sid: str, request: Request) -> JSONResponse:
            form = {k: str(v) for k, v in (await request.form()).items()}
            if (refusal := refused(request, account, form)) is not None:
                return refusal
            if self.fail_updates_with is not None:
                status, code = self.fail_updates_with
                return error(status, code, "injected failure")
            if self.on_update is not None and (refusal_code := self.on_update(call_sid, form)) is not None:
                return error(refusal_code[0], refusal_code[1], "Call is not in-progress. Cannot redirect.")
            return JSONResponse(resource(call_sid, form.get("Status", "in-progress"), form), 200)

        @app.get("/2010-04-01/Accounts/{account}.json")
        async def account(account: str, request: Request) -> JSONResponse:
            if (refusal := refused(request, account, {})) is not None:
                return refusal
            return JSONResponse({"sid": self.account_sid, "status": "active", "friendly_name": "offline", "type": "Full"})

        @app.get(prefix + "/IncomingPhoneNumbers.json")
        async def numbers(account: str, request: Request) -> JSONResponse:
            if (refusal := refused(request, account, dict(request.query_params))) is not None:
                return refusal
            wanted = request.query_params.get("PhoneNumber")
            found = [
                {
                    "sid": "PN" + hashlib.sha256(number.encode()).hexdigest()[:32],
                    "phone_number": number,
                    "voice_url": url,
                    "voice_method": "POST",
                }
                for number, url in self.numbers.items()
                if wanted in (None, number)
            ]
            uri = request.url.path + ("?" + request.url.query if request.url.query else "")
            return JSONResponse({"incoming_phone_numbers": found, "page": 0, "page_size": 50, "uri": uri, "next_page_uri": None})

        return app

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeTwilioRest]:
        async with running_server(self.app()) as base_url:
            self.base_url = base_url
            yield self
