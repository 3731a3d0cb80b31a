"""Outbound calls measured offline: a server in this process, the Gemini emulator, the Twilio
REST stand-in and the phone network behind it (people, answering machines, busy lines).

- `bench voicemail`: for each greeting (short, long, with and without a beep, Twilio's result
  early, late, unknown or missing, a person saying "hello?"), what the call was taken for, when
  the agent's message started after the beep, whether any of it was spoken before the beep,
  and whether the machine recorded it whole.
- `bench list`: a call list of N numbers (people, machines, busy, no answer) dialled with a
  concurrency limit: outcomes and wall time.

Times are call time on the machine's side of the wire (its emulator's clock, real time).
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from telephony.agents.agent import Agent
from telephony.audio.mulaw import decode_mulaw
from telephony.call.record import CallRecord
from telephony.call_lists.list_results import write_results
from telephony.settings import Settings
from telephony.testing.answering_machine import answering_machine
from telephony.testing.gemini_live import GeminiLiveEmulator
from telephony.testing.model_script import ScriptedModel
from telephony.testing.phone_network import Callee, PhoneNetwork, person
from telephony.testing.twilio_media import ReplayResult
from telephony.testing.twilio_rest import FakeTwilioRest
from telephony.twilio.dial import DialRequest, place_call
from telephony.web.app import create_app
from telephony.web.server import running_server

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-outbound-token"
MESSAGE = "Hello, this is Maple Clinic about your appointment on Friday. Please call us back. Goodbye."


@dataclass
class Outbound:
    network: PhoneNetwork
    settings: Settings
    base_url: str
    app: object


@contextlib.asynccontextmanager
async def outbound_stack(speed: float = 1.0, default: Callee | None = None) -> AsyncIterator[Outbound]:
    rest = FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN)
    network = PhoneNetwork(rest, AUTH_TOKEN, speed=speed, default=default)
    agent = Agent("clinic", instructions="You remind patients of appointments.", voicemail=MESSAGE)
    async with rest.running(), GeminiLiveEmulator(lambda: ScriptedModel([]), speed=max(speed, 2.0)) as gemini:
        settings = Settings(
            _env_file=None,
            gemini_api_key="offline",
            gemini_base_url=gemini.base_url,
            gemini_ca_file=gemini.ca_file,
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=AUTH_TOKEN,
            twilio_api_base=rest.base_url,
            database_url="sqlite:///:memory:",
            media_rate_limit=20.0,
            stall_seconds=0.0,
            max_concurrent_calls=200,
        )
        app = create_app(settings, agent=agent)
        async with running_server(app) as base_url:
            settings.public_url = base_url
            yield Outbound(network, settings, base_url, app)


# --- voicemail --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Greeting:
    name: str
    callee: Callee
    beep_end_s: float | None
    """Call seconds at which the beep ends (None: no beep, or a person)."""
    human: bool = False


def _machine(name: str, greeting_s: float, beep: bool, answered_by: str | None, detect_after_s: float | None = None) -> Greeting:
    messages = answering_machine(greeting_s=greeting_s, with_beep=beep, recording_s=25.0)
    beep_end = _beep_end(messages) if beep else None
    after = detect_after_s if detect_after_s is not None else (beep_end or greeting_s + 0.7) + 0.4
    callee = Callee("machine", 0.5, tuple(messages), answered_by or "none", detect_after_s=after if answered_by else 10_000.0)
    return Greeting(name, callee, beep_end)


def _beep_end(messages: list) -> float:
    """The end of the 1 kHz beep in a machine's recording (its loudest pure tone)."""
    frames = [(m.at_ms / 1000, m) for m in messages if m.event == "media"]
    last = 0.0
    for at, message in frames:
        payload = json.loads(message.text)["media"]["payload"]
        pcm = np.frombuffer(decode_mulaw(base64.b64decode(payload)), dtype="<i2").astype(np.float64)
        spectrum = np.abs(np.fft.rfft(pcm))
        if spectrum.max() > 1e5 and abs(np.argmax(spectrum) * 8000 / len(pcm) - 1000) < 60:
            last = at + 0.02
    return last


def greetings() -> list[Greeting]:
    return [
        _machine("short greeting, beep, Twilio: machine_end_beep", 2.0, True, "machine_end_beep"),
        _machine("long greeting, beep, Twilio: machine_end_beep", 9.0, True, "machine_end_beep"),
        _machine("greeting, beep, Twilio: unknown (our beep detector)", 4.0, True, "unknown"),
        _machine("greeting, beep, Twilio: machine_start early", 4.0, True, "machine_start", detect_after_s=1.5),
        _machine("greeting, beep, no Twilio result", 4.0, True, None),
        _machine("greeting, no beep, Twilio: machine_end_silence", 4.0, False, "machine_end_silence"),
        Greeting("a person: 'hello?'", person(speak_s=0.6, after_s=0.5, stay_s=12.0), None, human=True),
        Greeting("a person who talks on", person(speak_s=3.0, after_s=0.5, stay_s=10.0), None, human=True),
    ]


@dataclass(frozen=True)
class VoicemailRow:
    greeting: str
    detected_as: str
    message_left: bool
    starts_after_beep_s: float | None
    spoken_before_beep_s: float
    heard_whole: bool | None
    human: bool


async def run_voicemail(on_done: Callable[[str], None] = lambda name: None) -> list[VoicemailRow]:
    cases = greetings()
    async with outbound_stack(speed=1.0) as stack:
        for index, case in enumerate(cases):
            stack.network.callees[f"+1555200{index:04d}"] = case.callee
        request = DialRequest(to="+10000000000", from_="+15550000000", server=stack.base_url)
        sids = []
        for index in range(len(cases)):  # all at once: the bench takes as long as its longest greeting
            sids.append(await place_call(stack.settings, replace(request, to=f"+1555200{index:04d}")))
        await stack.network.settle(timeout=120)
        records = {r.call_sid: r for r in stack.app.state.recent_calls.values()}  # type: ignore[attr-defined]
        rows = []
        for case, sid in zip(cases, sids, strict=True):
            call = stack.network.calls[sid]
            record = records.get(sid)
            rows.append(_measure(case, call.result, record))
            on_done(case.name)
    return rows


def _measure(case: Greeting, result: ReplayResult | None, record: CallRecord | None) -> VoicemailRow:
    spans = []
    if result is not None:
        spans = [(at, len(frame) / 8000) for at, frame in result.played if _loud(frame)]
    first = spans[0][0] if spans else None
    beep = case.beep_end_s
    before = sum(min(d, max(0.0, beep - at)) for at, d in spans) if beep is not None else 0.0
    whole = None
    if result is not None and first is not None:  # every frame of the message sent was played, none cleared
        sent = sum(len(base64.b64decode(m.data["media"]["payload"])) for m in result.media() if m.at_s >= first - 0.5) / 8000
        played = sum(len(frame) for at, frame in result.played if at >= first - 0.01) / 8000
        whole = played >= sent - 0.05 and not [c for c in result.clears if c > first]
    detected = (record.answered_by if record is not None else None) or "-"
    return VoicemailRow(
        case.name,
        detected,
        bool(record is not None and record.voicemail_left),
        None if first is None or beep is None else first - beep,
        before,
        whole,
        case.human,
    )


def _loud(frame: bytes) -> bool:
    pcm = np.frombuffer(decode_mulaw(frame), dtype="<i2").astype(np.float64)
    return bool(np.sqrt(np.mean(pcm**2)) > 300)


# --- a call list ------------------------------------------------------------------------------


async def run_list_bench(path: Path, numbers: int, concurrency: int, speed: float, results: Path) -> dict[str, object]:
    """`numbers` rows: mostly people, every 7th a machine, every 11th busy, every 13th unanswered."""
    from telephony.call_lists.list_file import read_call_list
    from telephony.call_lists.list_run import ListOptions, ListRun
    from telephony.store.list_calls import ListProgress

    default = person(speak_s=0.8, after_s=1.0, stay_s=4.0)
    lines = ["number,name"]
    async with outbound_stack(speed=speed, default=default) as stack:
        for i in range(numbers):
            number = f"+1555300{i:04d}"
            lines.append(f"{number},Patient {i}")
            if i % 11 == 10:
                stack.network.callees[number] = Callee("busy")
            elif i % 13 == 12:
                stack.network.callees[number] = Callee("no-answer", ring_s=6.0)
            elif i % 7 == 6:
                stack.network.callees[number] = _machine("m", 3.0, True, "machine_end_beep").callee
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        rows, _ = read_call_list(path)
        template = DialRequest(to="+10000000000", from_="+15550000000", server=stack.base_url)
        options = ListOptions(concurrency=concurrency, calls_per_second=5.0, retries=1, retry_delay_s=2.0, poll_s=0.25)
        started = time.monotonic()
        run = ListRun(stack.settings, template, ListProgress("bench", None), options)
        entries = await run.run(rows)
        wall = time.monotonic() - started
        await stack.network.settle(timeout=60)
        peak = stack.network.peak_concurrent_calls()
        write_results(results, rows, entries, [])
    outcomes: dict[str, int] = {}
    for entry in entries.values():
        outcomes[entry.outcome or "?"] = outcomes.get(entry.outcome or "?", 0) + 1
    placed = len(stack.network.calls)
    return {"numbers": numbers, "concurrency": concurrency, "wall_s": wall, "outcomes": outcomes, "calls_placed": placed, "peak": peak}
