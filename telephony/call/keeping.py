"""What a call leaves behind, kept off the event loop: the raw Twilio messages (a fixture
for replays, `record_dir`), the stereo WAV recording, the call log line and the call history
(the server's `on_call_start` / `on_call_end`). The driver tells it when the call starts,
each frame, each second's audio, and the end; a failing disk is logged, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telephony.call.record import CallRecord, CallRecorder, append_call_log
from telephony.call.services import CallServices, RecordingSink
from telephony.call.tracing import CallTrace
from telephony.logs import CallLogger


class CallKeeping:
    def __init__(self, services: CallServices, log: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        self._services = services
        self._log = log
        self._messages = CallRecorder(services.record_dir) if services.record_dir else None
        self._wav: RecordingSink | None = None
        self._trace = CallTrace()

    def started(self, record: CallRecord, recording: bool) -> bool:
        """The call was admitted; True when a stereo recording was opened (`recording`: the
        core records)."""
        if self._messages is not None and record.call_sid:
            self._messages.open(record.call_sid)
        trace_id = self._trace.begin(record)
        if trace_id is not None and isinstance(self._log, CallLogger):
            self._log.add_trace(trace_id)
        opened = False
        if recording and self._services.open_recording is not None and record.call_sid:
            try:
                self._wav = self._services.open_recording(record.call_sid, record.started_at)
                record.recording = str(self._wav.path)
                opened = True
            except OSError as exc:
                self._log.error("cannot record the call: %s", exc)
        if self._services.on_call_start is not None:
            self._services.on_call_start(record)
        return opened

    def frame(self, raw: str | bytes) -> None:
        """One frame from Twilio, as it came (for replays)."""
        if self._messages is not None and isinstance(raw, str):
            self._messages.write(raw)

    async def audio(self, pcm: bytes) -> None:
        """Stereo audio the core collected since the last call."""
        if pcm and self._wav is not None:
            try:
                await asyncio.to_thread(self._wav.append, pcm)
            except OSError as exc:
                self._log.error("recording stopped: %s", exc)
                self._wav = None

    async def ended(self, record: CallRecord, admitted: bool, last_audio: bytes) -> None:
        """The record is complete: the files are closed and the call is written down."""
        if self._wav is not None:
            await self.audio(last_audio)
            if self._wav is not None:
                await asyncio.to_thread(self._wav.close)
        if self._messages is not None:
            await asyncio.to_thread(self._messages.close)
        # A stream refused at `start` (bad or replayed token, a second stream for a live call)
        # is not a call: it must never replace the record of the call whose CallSid it named.
        if not admitted:
            return
        try:
            self._trace.end(record)
        except Exception as exc:  # an exporter's trouble never touches the call's record
            self._log.warning("could not write the call's trace: %s", type(exc).__name__)
        if self._services.call_log_dir is not None and record.call_sid:
            try:
                await asyncio.to_thread(append_call_log, self._services.call_log_dir, record)
            except OSError as exc:
                self._log.error("could not write the call log: %s", exc)
        if self._services.on_call_end is not None:
            result = self._services.on_call_end(record)
            if asyncio.iscoroutine(result):
                await result
