"""The telephone network behind the Twilio REST stand-in: who answers the numbers the server
dials, and what Twilio does to calls it is told to move.

    network = PhoneNetwork(rest, AUTH_TOKEN, speed=2.0)
    network.callees["+15550001111"] = person(keys="1")          # takes a warm transfer
    network.callees["+15550002222"] = Callee(answer="no-answer")
    network.callees["+15550003333"] = machine(greeting_s=4.0)    # voicemail, with a beep

For every call placed through the stand-in (`telephony dial`, a list run, a warm transfer's
person) it posts the status callbacks as Twilio does (ringing, then busy / no-answer / failed,
or in-progress ... completed with a duration), fetches the call's TwiML (signed), opens the
media stream it names and plays the callee (`TwilioMediaEmulator`), and posts the
asynchronous answering-machine result when the call asked for one. A call redirected into a
`<Conference>` leaves its stream (Twilio's `stop`) and joins the room; a call completed
through the REST API stops at once. `attach()` a caller's own emulator so that a redirect of
the caller's call ends its stream too. Times are call time: `speed` times faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from telephony.http_client import http_client
from telephony.testing.answering_machine import answering_machine
from telephony.testing.call_fixture import CallFixtureBuilder, FixtureMessage, parse_fixture_lines
from telephony.testing.caller_speech import speech_like
from telephony.testing.twilio_media import ReplayResult, TwilioMediaEmulator
from telephony.testing.twilio_rest import FakeTwilioRest
from telephony.twilio.signatures import TwilioSignatures

NOT_IN_PROGRESS = (400, 21220)


@dataclass(frozen=True)
class Callee:
    """What answers a number: `answer` is person, machine, busy, no-answer or failed."""

    answer: str = "person"
    ring_s: float = 1.0
    messages: tuple[FixtureMessage, ...] = ()
    """What they send once their stream is open (speech, keys, silence, then `stop`)."""
    answered_by: str | None = None
    """Twilio's detection result (default: human for a person, machine_end_beep for a machine)."""
    detect_after_s: float = 2.5


def person(keys: str = "", speak_s: float = 0.0, after_s: float = 4.0, stay_s: float = 30.0, ring_s: float = 1.0) -> Callee:
    """A person who answers, listens for `after_s`, then presses `keys` and/or speaks for
    `speak_s`, then stays on the line (silent) for `stay_s` before hanging up."""
    builder = CallFixtureBuilder("person").silence(int(after_s * 1000))
    for key in keys:
        builder.dtmf(key).silence(200)
    if speak_s:
        builder.speech(speech_like("x" * round(speak_s / 0.065), 8000))
    builder.silence(int(stay_s * 1000)).stop()
    return Callee("person", ring_s, tuple(parse_fixture_lines(builder.lines(), "person")), "human")


def machine(greeting_s: float = 4.0, with_beep: bool = True, answered_by: str = "machine_end_beep", ring_s: float = 1.0) -> Callee:
    """An answering machine: greeting, beep, recording; detected `answered_by` after the greeting."""
    messages = answering_machine(greeting_s=greeting_s, with_beep=with_beep, recording_s=20.0)
    return Callee("machine", ring_s, tuple(messages), answered_by, detect_after_s=greeting_s + 1.0)


@dataclass
class NetworkCall:
    """One call the network carried: to whom, what happened, when (call seconds from its creation)."""

    sid: str
    to: str
    callee: Callee
    created: float
    events: list[tuple[float, str]] = field(default_factory=list)
    emulator: TwilioMediaEmulator | None = None
    result: ReplayResult | None = None
    conference: str | None = None
    ended: bool = False


class PhoneNetwork:
    def __init__(self, rest: FakeTwilioRest, auth_token: str, speed: float = 1.0, default: Callee | None = None) -> None:
        self.rest = rest
        self.signatures = TwilioSignatures(auth_token)
        self.speed = speed
        self.default = default or person()
        self.callees: dict[str, Callee] = {}
        self.calls: dict[str, NetworkCall] = {}
        self.attached: dict[str, TwilioMediaEmulator] = {}
        self.conferences: dict[str, list[str]] = {}
        """Room name -> the CallSids redirected into it, in order."""
        self.tasks: set[asyncio.Task[None]] = set()
        self.balance: Callable[[str], str] = lambda url: url
        """Where a request for a public URL lands (a load balancer in front of several
        instances): requests are signed for the public URL and sent to this one."""
        rest.on_create = self._created
        rest.on_update = self._updated

    def attach(self, call_sid: str, emulator: TwilioMediaEmulator) -> None:
        """A call the test plays itself (the caller): a redirect of it ends its stream."""
        self.attached[call_sid] = emulator

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until every call the network carries has ended."""
        async with asyncio.timeout(timeout):
            while pending := [t for t in self.tasks if not t.done()]:
                await asyncio.gather(*pending, return_exceptions=True)

    def peak_concurrent_calls(self) -> int:
        """The most calls the network carried at one moment (from their first to last event)."""
        steps: list[tuple[float, int]] = []
        for call in self.calls.values():
            end = call.created + (call.events[-1][0] if call.events else 0.0) / self.speed
            steps += [(call.created, 1), (end, -1)]
        level = peak = 0
        for _, step in sorted(steps):
            level += step
            peak = max(peak, level)
        return peak

    # --- the REST stand-in's hooks ------------------------------------------------------------

    def _created(self, sid: str, form: dict[str, str]) -> None:
        callee = self.callees.get(form.get("To", ""), self.default)
        call = self.calls[sid] = NetworkCall(sid, form.get("To", ""), callee, time.monotonic())
        task = asyncio.get_running_loop().create_task(self._carry(call, form))
        self.tasks.add(task)

    def _updated(self, sid: str, form: dict[str, str]) -> tuple[int, int] | None:
        call = self.calls.get(sid)
        emulator = call.emulator if call is not None else self.attached.get(sid)
        if call is not None and call.ended:
            return NOT_IN_PROGRESS
        twiml = form.get("Twiml", "")
        if room := re.search(r"<Conference[^>]*>([^<]+)</Conference>", twiml):
            self.conferences.setdefault(room.group(1), []).append(sid)
            if call is not None:
                call.conference = room.group(1)
                self._note(call, f"joined conference {room.group(1)}")
        elif form.get("Status") == "completed" and call is not None:
            self._note(call, "hung up through the REST API")
        if emulator is not None:
            emulator.redirected = True
        return None

    # --- one call -------------------------------------------------------------------------

    def _note(self, call: NetworkCall, what: str) -> None:
        call.events.append(((time.monotonic() - call.created) * self.speed, what))

    async def _carry(self, call: NetworkCall, form: dict[str, str]) -> None:
        status_url = form.get("StatusCallback")
        try:
            await self._status(status_url, call, "initiated")
            await self._status(status_url, call, "ringing")
            await asyncio.sleep(call.callee.ring_s / self.speed)
            if call.callee.answer in ("busy", "no-answer", "failed"):
                call.ended = True
                await self._status(status_url, call, call.callee.answer)
                return
            await self._status(status_url, call, "in-progress")
            emulator = call.emulator = TwilioMediaEmulator(
                list(call.callee.messages or person().messages), speed=self.speed, call_sid=call.sid, linger_s=0.5
            )
            emulator.signatures = self.signatures
            fields = {"CallSid": call.sid, "From": form.get("From", ""), "To": call.to, "Direction": "outbound-api"}
            detection = None
            if form.get("AsyncAmd") == "true" and form.get("AsyncAmdStatusCallback"):
                detection = asyncio.create_task(self._detect(call, form["AsyncAmdStatusCallback"]))
            try:
                target = await emulator.answer(form["Url"], fields, reach=self.balance(form["Url"]))
            except (ValueError, httpx.HTTPError) as exc:
                self._note(call, f"no stream: {exc}")
            else:
                self._note(call, "stream opened")
                call.result = await emulator.play(target, connect_url=self.balance(target.url))
                self._note(call, "stream closed")
            if detection is not None:
                detection.cancel()
                await asyncio.gather(detection, return_exceptions=True)
            if call.conference is None:
                call.ended = True
                await self._status(status_url, call, "completed")
        except Exception as exc:  # noqa: BLE001 - a test's network never crashes the test's loop
            self._note(call, f"network error: {type(exc).__name__}: {exc}")
            call.ended = True

    async def _detect(self, call: NetworkCall, url: str) -> None:
        await asyncio.sleep(call.callee.detect_after_s / self.speed)
        kind = call.callee.answered_by or ("human" if call.callee.answer == "person" else "machine_end_beep")
        await self._post(url, {"CallSid": call.sid, "AnsweredBy": kind, "MachineDetectionDuration": "2500"})
        self._note(call, f"answered by {kind}")

    async def _status(self, url: str | None, call: NetworkCall, status: str) -> None:
        self._note(call, status)
        if url:
            fields = {"CallSid": call.sid, "CallStatus": status, "To": call.to}
            if status == "completed":
                fields["CallDuration"] = str(round((time.monotonic() - call.created) * self.speed))
            await self._post(url, fields)

    async def _post(self, url: str, fields: dict[str, str]) -> None:
        form = {"AccountSid": self.rest.account_sid, **fields}
        headers = {"X-Twilio-Signature": self.signatures.sign(url, form)}
        with contextlib.suppress(httpx.HTTPError):
            async with http_client(10) as client:
                await client.post(self.balance(url), data=form, headers=headers)
