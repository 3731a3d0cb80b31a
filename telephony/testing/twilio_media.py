"""A Twilio Media Streams emulator: plays a recorded call into a `/media-stream` server.

It behaves as Twilio does: optionally calls the voice webhook first (signed form POST) and
follows the TwiML's `<Connect><Stream>` with its `<Parameter>`s; opens the WebSocket with an
`X-Twilio-Signature`; sends the recorded messages at real-time pace (or `speed` times faster);
plays the audio the server sends back in real time, echoing each `mark` once the audio before
it has played; and honours `clear` by discarding unplayed audio and returning pending marks.

The result says what the caller heard (`heard_mulaw()`, aligned to call time) and everything
the server sent, with arrival times.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection

from telephony.audio.mulaw import SILENCE_BYTE, decode_mulaw
from telephony.http_client import http_client
from telephony.testing.call_fixture import FixtureMessage, fake_sid, read_fixture
from telephony.testing.phone_player import PhonePlayer
from telephony.twilio.media_streams import (
    Mark,
    MarkDetails,
    Start,
    Stop,
    StopDetails,
    TwilioProtocolError,
    parse_message,
)
from telephony.twilio.signatures import TwilioSignatures

FRAME_MS = 20


@dataclass(frozen=True)
class Received:
    """One message from the server, with its arrival time in call seconds."""

    at_s: float
    event: str
    data: dict[str, Any]


@dataclass
class ReplayResult:
    call_sid: str
    stream_sid: str
    received: list[Received] = field(default_factory=list)
    marks_echoed: list[str] = field(default_factory=list)
    mark_echo_times: list[float] = field(default_factory=list)
    """Call seconds at which each of `marks_echoed` was sent back."""
    clears: list[float] = field(default_factory=list)
    close_code: int | None = None
    played: list[tuple[float, bytes]] = field(default_factory=list)
    """(call seconds when the frame started playing, mu-law frame) for every frame played."""
    duration_s: float = 0.0
    media_sent_at: list[float] = field(default_factory=list)
    """Call seconds at which each caller media frame was sent (only with `record_sends`)."""
    underruns: int = 0
    """Agent frames that arrived after the frame before them had finished playing, mid-reply:
    the caller heard a gap."""
    caller_hung_up: bool = False
    """True when the recorded call ran to its `stop`; False when the server ended it first."""
    started_monotonic: float = 0.0
    speed: float = 1.0

    def monotonic(self, at_s: float) -> float:
        """time.monotonic() of a call time, to compare with other components' clocks."""
        return self.started_monotonic + at_s / self.speed

    def heard_mulaw(self) -> bytes:
        """Everything the caller heard, on the call's timeline (silence where nothing played)."""
        out = bytearray()
        for start_s, frame in sorted(self.played, key=lambda p: p[0]):
            position = int(round(start_s * 8000))
            if position > len(out):
                out.extend(bytes([SILENCE_BYTE]) * (position - len(out)))
            out[position : position + len(frame)] = frame
        return bytes(out)

    def heard_pcm(self) -> bytes:
        return decode_mulaw(self.heard_mulaw())

    def media(self) -> list[Received]:
        return [r for r in self.received if r.event == "media"]

    def media_seconds(self, after_s: float = -1.0) -> float:
        """Seconds of audio received in media messages that arrived after `after_s` (call time)."""
        return sum(len(base64.b64decode(m.data["media"]["payload"])) / 8000 for m in self.media() if m.at_s > after_s)

    @property
    def heard_seconds(self) -> float:
        return sum(len(frame) for _, frame in self.played) / 8000


@dataclass(frozen=True)
class StreamTarget:
    """Where to open the media stream and what Twilio would put in `start`."""

    url: str
    parameters: dict[str, str]
    call_sid: str


class TwilioMediaEmulator:
    """Replays one recorded call. Create one per call."""

    def __init__(
        self,
        fixture: str | Path | list[FixtureMessage] | AsyncIterator[FixtureMessage],
        *,
        speed: float = 1.0,
        auth_token: str | None = None,
        call_sid: str | None = None,
        parameters: dict[str, str] | None = None,
        linger_s: float = 1.0,
        record_sends: bool = False,
        on_progress: Callable[[float, float], None] | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.live: AsyncIterator[FixtureMessage] | None = None
        """A caller that decides as the call goes (a conversation test): messages come from
        here, `at_ms` in call time (`call_time()`), until it ends."""
        if isinstance(fixture, (str, Path)):
            self.messages = read_fixture(fixture)
        elif isinstance(fixture, list):
            self.messages = fixture
        else:
            self.messages, self.live = [], fixture
        self._clock: Callable[[], float] | None = None
        self.player: PhonePlayer | None = None
        """What the caller is hearing, while the call runs."""
        self.speed = speed
        self.signatures = TwilioSignatures(auth_token) if auth_token else None
        self.parameters = dict(parameters or {})
        self.call_sid = call_sid
        self.linger_s = linger_s
        self.record_sends = record_sends
        self.on_progress = on_progress
        self.total_s = max((m.at_ms for m in self.messages), default=0) / 1000 + FRAME_MS / 1000
        self.redirected = False
        """Twilio moved the call elsewhere (a redirect, a hang-up through the REST API): the
        stream stops with a `stop` message at once, whatever the recording has left."""

    # --- the webhook step -----------------------------------------------------------------

    async def answer(self, webhook_url: str, form: dict[str, str] | None = None, *, reach: str | None = None) -> StreamTarget:
        """POST the voice webhook as Twilio does and read `<Connect><Stream>` from the TwiML
        (signed for `webhook_url`, sent to `reach` when given: the instance a load balancer picked)."""
        call_sid = (form or {}).get("CallSid") or self.call_sid or fake_sid("CA", f"replay:{time.time_ns()}")
        fields = {
            "CallSid": call_sid,
            "AccountSid": fake_sid("AC", "account"),
            "From": "+15550100001",
            "To": "+15550100002",
            "CallStatus": "ringing",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        fields.update(form or {})
        headers = {}
        if self.signatures is not None:
            headers["X-Twilio-Signature"] = self.signatures.sign(webhook_url, fields)
        async with http_client(10) as client:
            response = await client.post(reach or webhook_url, data=fields, headers=headers)
        response.raise_for_status()
        stream = ET.fromstring(response.text).find("./Connect/Stream")
        if stream is None:
            raise ValueError(f"the webhook answered no <Connect><Stream>: {response.text[:200]}")
        parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        return StreamTarget(url=stream.get("url", ""), parameters=parameters, call_sid=call_sid)

    # --- the stream -----------------------------------------------------------------------

    async def play(self, target: StreamTarget | str, *, connect_url: str | None = None) -> ReplayResult:
        """Open the stream (at `connect_url` if the public URL is not reachable) and play."""
        if isinstance(target, str):
            target = StreamTarget(url=target, parameters={}, call_sid=self.call_sid or "")
        headers = {}
        if self.signatures is not None:
            headers["X-Twilio-Signature"] = self.signatures.sign(target.url)
        async with websockets.connect(connect_url or target.url, additional_headers=headers, max_size=1 << 20) as ws:
            return await self._run(ws, target)

    async def call(self, webhook_url: str) -> ReplayResult:
        """The whole Twilio flow: webhook, TwiML, then the media stream it names."""
        target = await self.answer(webhook_url)
        return await self.play(target)

    async def _run(self, ws: ClientConnection, target: StreamTarget) -> ReplayResult:
        t0 = time.monotonic()

        def clock() -> float:
            return (time.monotonic() - t0) * self.speed

        player = self.player = PhonePlayer(clock, self.speed)
        self._clock = clock
        sequence = 0
        result = ReplayResult(call_sid=target.call_sid, stream_sid="", started_monotonic=t0, speed=self.speed)
        send_lock = asyncio.Lock()

        async def send(text: str) -> None:
            async with send_lock:
                await ws.send(text)

        def renumber(model: Any) -> str:
            nonlocal sequence
            sequence += 1
            return model.model_copy(update={"sequence_number": sequence}).to_json()

        async def echo(name: str) -> None:
            result.marks_echoed.append(name)
            result.mark_echo_times.append(clock())
            await send(renumber(Mark(stream_sid=result.stream_sid, mark=MarkDetails(name=name), sequence_number=0)))

        async def echo_marks() -> None:
            with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                await _echo_marks()

        async def _echo_marks() -> None:
            while True:
                for name in player.due_marks():
                    await echo(name)
                player.changed.clear()
                due = player.next_due()
                timeout = None if due is None else max(0.0, (due - clock()) / self.speed)
                with contextlib.suppress(TimeoutError):  # asyncio.timeout keeps cancel() working (3.11)
                    async with asyncio.timeout(timeout):
                        await player.changed.wait()

        async def listen() -> None:
            with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                await _listen()

        async def _listen() -> None:
            async for raw in ws:
                data = json.loads(raw)
                event = data.get("event", "")
                result.received.append(Received(clock(), event, data))
                if event == "media":
                    player.audio(_payload(data))
                elif event == "mark":
                    player.mark(data.get("mark", {}).get("name", ""))
                elif event == "clear":
                    result.clears.append(clock())
                    for name in player.clear():  # Twilio returns pending marks at once
                        await echo(name)

        listener = asyncio.create_task(listen())
        echoer = asyncio.create_task(echo_marks())
        try:
            async for message in self._messages():
                if message.event == "mark":
                    continue  # a recorded echo: this emulator makes its own
                delay = (message.at_ms / 1000 - clock()) / self.speed
                if delay > 0:
                    await asyncio.sleep(delay)
                if listener.done():
                    break  # the server closed the stream
                if self.redirected:
                    with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                        await send(renumber(_stop(result)))
                    break
                text = self._rewrite(message, target, renumber, result)
                try:
                    await send(text)
                except websockets.exceptions.ConnectionClosed:
                    break  # the server hung up on us; Twilio would stop streaming too
                if message.event == "stop":
                    result.caller_hung_up = True
                elif self.record_sends and message.event == "media":
                    result.media_sent_at.append(clock())
                if self.on_progress is not None:
                    self.on_progress(min(message.at_ms / 1000, self.total_s), self.total_s)
            # Let the server finish: it closes after `stop`; otherwise hang up after lingering.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(listener), self.linger_s / self.speed + 2)
        finally:
            echoer.cancel()
            listener.cancel()
            await asyncio.gather(echoer, listener, return_exceptions=True)
            await ws.close()
            result.close_code = ws.close_code
            result.duration_s = clock()
            result.played = [(s, f) for s, f in player.scheduled if s < clock()]
            result.underruns = player.underruns
        return result

    def call_time(self) -> float:
        """Seconds of call time since the stream opened (0 before)."""
        return self._clock() if self._clock is not None else 0.0

    async def _messages(self) -> AsyncIterator[FixtureMessage]:
        for message in self.messages:
            yield message
        if self.live is not None:
            async for message in self.live:
                yield message

    def _rewrite(self, message: FixtureMessage, target: StreamTarget, renumber: Callable[[Any], str], result: ReplayResult) -> str:
        if message.event == "connected":
            return message.text
        try:
            model = parse_message(message.text)
        except TwilioProtocolError:
            return message.text  # deliberately malformed fixtures go out untouched
        if isinstance(model, Start):
            details = model.start
            parameters = {**details.custom_parameters, **target.parameters, **self.parameters}
            call_sid = target.call_sid or details.call_sid
            details = details.model_copy(update={"custom_parameters": parameters, "call_sid": call_sid})
            model = model.model_copy(update={"start": details})
            result.stream_sid = model.stream_sid
            result.call_sid = call_sid
        if hasattr(model, "sequence_number"):
            return renumber(model)
        return model.to_json()


def _stop(result: ReplayResult) -> Stop:
    details = StopDetails(account_sid=fake_sid("AC", "account"), call_sid=result.call_sid)
    return Stop(sequence_number="0", stream_sid=result.stream_sid, stop=details)


def _payload(data: dict[str, Any]) -> bytes:
    return base64.b64decode(data.get("media", {}).get("payload", ""))


def http_to_ws(url: str) -> str:
    """ws(s):// form of an http(s):// base URL."""
    parts = urlsplit(url)
    return parts._replace(scheme={"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)).geturl()


__all__ = ["Received", "ReplayResult", "StreamTarget", "TwilioMediaEmulator", "http_to_ws"]
