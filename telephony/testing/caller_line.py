"""The caller's side of a conversation test's stream: line noise between turns, the caller's
lines as speech, keys pressed (each key's tone in the audio, then its `dtmf` event, as Twilio
sends them), and the hang-up; timed so that a test knows when each line was said."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from telephony.audio.dtmf import dtmf_mulaw
from telephony.audio.mulaw import encode_mulaw
from telephony.testing.call_fixture import FixtureMessage, fake_sid
from telephony.testing.caller_speech import line_noise
from telephony.twilio.media_streams import (
    Connected,
    Dtmf,
    DtmfDetails,
    Media,
    MediaDetails,
    Start,
    StartDetails,
    Stop,
    StopDetails,
)

if TYPE_CHECKING:
    from telephony.testing.twilio_media import TwilioMediaEmulator


class CallerLine:
    def __init__(self, account_sid: str) -> None:
        self.account_sid = account_sid
        self.queue: asyncio.Queue[tuple[bytes, float] | str | None] = asyncio.Queue()
        """What the caller does next: speak (mu-law, seconds), press keys (a str), hang up (None)."""
        self.started_s: list[float] = []
        """When each line's first frame went out (call seconds)."""
        self.ends_s = 0.0
        """When the last line's last frame goes out (call seconds)."""

    async def frames(self, caller: TwilioMediaEmulator) -> AsyncIterator[FixtureMessage]:
        """The caller's side of the stream: line noise, the lines as they come, a hang-up."""
        call_sid, stream_sid = fake_sid("CA", f"conversation:{time.time_ns()}"), fake_sid("MZ", f"stream:{time.time_ns()}")
        account = self.account_sid
        yield FixtureMessage(0, Connected().to_json(), "connected")
        start = StartDetails(account_sid=account, call_sid=call_sid, stream_sid=stream_sid, tracks=["inbound"], custom_parameters={})
        yield FixtureMessage(0, Start(sequence_number=1, stream_sid=stream_sid, start=start).to_json(), "start")
        quiet = encode_mulaw(line_noise(160).astype("<i2").tobytes())
        chunk, at_ms = 0, 0
        pending = b""
        keys: list[str] = []
        pressed: str | None = None  # Twilio sends a key's event once its tone (in the audio) is over
        while True:
            starting = False
            if not pending and pressed is not None:
                dtmf = Dtmf(sequence_number=0, stream_sid=stream_sid, dtmf=DtmfDetails(digit=pressed))
                yield FixtureMessage(at_ms, dtmf.to_json(), "dtmf")
                pressed = None
            if not pending and keys:
                pressed = keys.pop(0)
                pending = dtmf_mulaw(pressed, tone_ms=100, gap_ms=60)
            elif not pending:
                try:
                    line = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    line = (b"", 0.0)
                if line is None:
                    stop = StopDetails(account_sid=account, call_sid=call_sid)
                    yield FixtureMessage(at_ms, Stop(sequence_number=0, stream_sid=stream_sid, stop=stop).to_json(), "stop")
                    return
                if isinstance(line, str):  # keys the caller presses
                    keys = list(line)
                    continue
                pending = line[0]
                starting = bool(pending)
            frame, pending = (pending[:160], pending[160:]) if pending else (quiet, b"")
            frame = frame.ljust(160, quiet[:1])
            chunk += 1
            at_ms = max(at_ms + 20, int(caller.call_time() * 1000))
            if starting:  # a line's first frame: its speech is timed from here
                self.started_s.append(at_ms / 1000)
                self.ends_s = (at_ms + len(pending) / 8 + 20) / 1000
            media = MediaDetails(track="inbound", chunk=chunk, timestamp=(chunk - 1) * 20, payload=frame)
            yield FixtureMessage(at_ms, Media(sequence_number=0, stream_sid=stream_sid, media=media).to_json(), "media")
