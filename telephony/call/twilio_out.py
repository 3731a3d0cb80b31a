"""Everything the caller hears, on its way out to Twilio: where agent audio is transcoded
(24 kHz PCM to 8 kHz mu-law), paced (`playout.Playout`), sent as media and mark messages,
and thrown away at a barge-in (`clear`). With recording on, what was sent goes onto the
call's stereo timeline at the moment it is sent.
"""

from __future__ import annotations

from collections.abc import Callable

from telephony.audio.mulaw import decode_mulaw
from telephony.audio.transcode import GeminiToCaller
from telephony.call.actions import Action, SendTwilio
from telephony.call.playout import MarkOut, MediaOut, Playout, Source
from telephony.call.record import CallRecord
from telephony.call.recording import StereoTimeline
from telephony.call.rules import CallConfig
from telephony.call.tally import Tally
from telephony.twilio.media_streams import Outbound, clear_message, mark_message, media_message


class TwilioOut:
    def __init__(self, config: CallConfig, record: CallRecord, tally: Tally, send: Callable[[Action], None]) -> None:
        self.stream_sid = ""
        self.playout = Playout(config.playout_lead_ms, config.playout_batch_ms)
        self.stereo = StereoTimeline() if config.record_audio else None
        self._transcoder = GeminiToCaller(compiled=config.compiled_audio)
        self._record = record
        self._tally = tally
        self._send = send

    def agent_audio(self, pcm24k: bytes) -> None:
        """Gemini's speech, transcoded, held to be paced out."""
        self.playout.hold(b"".join(self._transcoder.process(pcm24k)), Source.AGENT)

    def agent_done(self) -> None:
        """The reply ended (turn complete, old connection gone): its last samples go out too."""
        self.playout.hold(b"".join(self._transcoder.flush()), Source.AGENT)

    def drop_agent_tail(self) -> None:
        """Forget what the transcoder holds of the agent (a barge-in, the call ending)."""
        self._transcoder.reset()

    def clear(self) -> float:
        """Empty Twilio's buffer and drop what we hold of the agent, the transcoder's tail
        included; returns the ms of agent audio dropped here."""
        self._send(SendTwilio(clear_message(self.stream_sid), Outbound.CLEAR))
        if self.stereo is not None:
            self.stereo.cleared()
        dropped_ms = self.playout.clear()
        self._transcoder.reset()
        return dropped_ms

    def release(self) -> list[tuple[int, bool]]:
        """Send what the pace allows now (one media message per batch, each closed by a
        mark); returns the waiters (token, heard) settled meanwhile."""
        for item in self.playout.release():
            if isinstance(item, MediaOut):
                self._send(SendTwilio(media_message(self.stream_sid, item.mulaw), Outbound.MEDIA))
                if self.stereo is not None:
                    self.stereo.agent_sent(decode_mulaw(item.mulaw))
                self._record.frames_out += item.frames
                self._tally.inc("frames_out", amount=item.frames)
            elif isinstance(item, MarkOut):
                self._send(SendTwilio(mark_message(self.stream_sid, item.name), Outbound.MARK))
        resolved, self.playout.resolved = self.playout.resolved, []
        return resolved
