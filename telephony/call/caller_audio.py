"""The caller's audio on its way to Gemini: where Twilio's mu-law is decoded for the model.

One `CallerAudioPath` per call turns each media payload into what the core needs: 8 kHz PCM
for voice detection and the recording, 16 kHz PCM for Gemini (level-controlled and resampled
by `audio.transcode.CallerToGemini`, or the browser phone's wideband PCM as it is), and the
messages for Gemini, sent in blocks of `caller_block_bytes`. While no answer is owed to the
caller (nothing loud and no onset of speech since the agent last began to speak, and the
core's `quiet_may_wait`), their quiet (below `QUIET_RMS`, and not speech to the voice
detection) goes in blocks of up to `caller_quiet_block_bytes`, and the first loud frame, or
the first frame of speech however soft, goes at once with everything that waited. Once they
spoke, every 20 ms of their silence goes at once again, because that is what ends their turn
in Gemini's voice detection. Fewer messages (each costs a websocket frame and a TLS write: about a tenth of the
server's CPU), and no delay to anything the caller says or to the end of their turn.

With Gemini's voice detection off (`manual_activity`), the caller's turns are framed here:
`activityStart` at the onset of speech, then the audio from just before it (a 300 ms
pre-roll, or the first syllable is lost), then `activityEnd` after the silence. The point
where speech started is reported in order among the messages (`SPEECH_STARTED`), so the core
can cut the agent off exactly there.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

from telephony.audio.agc import CallerLevel
from telephony.audio.dtmf_detect import DtmfToneDetector
from telephony.audio.level import QUIET_RMS, rms16
from telephony.audio.mulaw import decode_mulaw, halve_rate
from telephony.audio.transcode import CallerToGemini
from telephony.call.rules import CallConfig
from telephony.call.voice_activity import CallerVoice, SpeechUpdate
from telephony.gemini.messages import ActivityEnd, ActivityStart, CallerAudio, GeminiMessage

PREROLL_MS = 300
"""Manual turn-taking: caller audio kept from before speech onset, sent after activityStart."""
SPEECH_STARTED: Final = "speech_started"
"""In `CallerFrame.out`: the caller began to speak here (manual turn-taking)."""


@dataclass
class CallerFrame:
    """What one media payload became."""

    pcm8k: bytes
    updates: list[SpeechUpdate] = field(default_factory=list)
    """Voice detection's news (onset, barge-in length reached, end of speech)."""
    out: list[GeminiMessage | Literal["speech_started"]] = field(default_factory=list)
    """For Gemini, in order; `SPEECH_STARTED` marks where the caller's speech began."""


class CallerAudioPath:
    """Twilio (or browser) audio in, Gemini messages out; no I/O."""

    def __init__(self, config: CallConfig) -> None:
        self.wideband = False
        """16 kHz linear PCM from the browser phone, instead of 8 kHz mu-law."""
        self._halving: Any = None
        self._manual = config.manual_activity
        self._block_bytes = config.caller_block_bytes
        self._quiet_block_bytes = max(config.caller_quiet_block_bytes, config.caller_block_bytes)
        self._loud_since_answer = False
        """A loud frame since the agent last began to answer: an answer may be owed (even for
        a word too short for voice detection), so the caller's quiet goes every 20 ms."""
        compiled = config.compiled_audio
        self.to_gemini = CallerToGemini(CallerLevel(compiled=compiled) if config.caller_agc else None, compiled=compiled)
        self.voice: CallerVoice | None = None
        if config.manual_activity or config.barge_in_min_speech_ms > 0:
            self.voice = CallerVoice(min_speech_ms=config.barge_in_min_speech_ms or 10**9, silence_ms=config.activity_silence_ms)
        self._tones: DtmfToneDetector | None = None
        self._block = bytearray()
        self._waiting8k = bytearray()
        """Narrowband frames waiting to be levelled and resampled as one block for Gemini."""
        self._preroll: deque[bytes] = deque()
        self._preroll_bytes = 0
        self._in_activity = False

    def ms_in(self, payload: bytes) -> float:
        """How much audio a payload carries."""
        return len(payload) / (32 if self.wideband else 8)

    def mute_keypad_tones(self) -> None:
        """From now on, frames carrying a keypad tone are silence for Gemini, voice detection
        and the recording (an agent takes secret digits: `telephony.call.keypad`)."""
        self._tones = DtmfToneDetector()

    def feed(self, payload: bytes, mute: bool = False, quiet_may_wait: bool = False) -> CallerFrame:
        """One frame from the caller; `mute`: it goes on as silence (keypad entry);
        `quiet_may_wait`: the core owes the caller no answer, so quiet may wait for a bigger block."""
        if self.wideband:  # 16 kHz from the browser: as it is for Gemini, halved for voice detection
            pcm16k = payload[: len(payload) & ~1]
            pcm8k, self._halving = halve_rate(pcm16k, self._halving)
            if mute or (self._tones is not None and self._tones.has_tone(np.frombuffer(pcm8k, dtype="<i2"))):
                pcm16k, pcm8k = bytes(len(pcm16k)), bytes(len(pcm8k))
        else:
            pcm8k = decode_mulaw(payload)
            if mute or (self._tones is not None and self._tones.has_tone(np.frombuffer(pcm8k, dtype="<i2"))):
                pcm8k = bytes(len(pcm8k))
            pcm16k = b""  # resampled when its block goes (below), or at once for manual turns
        frame = CallerFrame(pcm8k, self.voice.feed(pcm8k) if self.voice is not None else [])
        if self._manual:
            self._frame_turns(pcm16k if self.wideband else self.to_gemini.process_pcm8k(pcm8k), frame)
            return frame
        waits = False
        if self._quiet_block_bytes > self._block_bytes:
            voice = self.voice
            # An answer may be owed from a loud frame on, or from the onset of speech too soft
            # for the level gate; a frame that voice detection calls speech never waits.
            self._loud_since_answer = (
                self._loud_since_answer or rms16(pcm8k) >= QUIET_RMS or (voice is not None and any(u.started for u in frame.updates))
            )
            waits = quiet_may_wait and not self._loud_since_answer and not (voice is not None and voice.heard_speech)
        block_bytes = self._quiet_block_bytes if waits else self._block_bytes
        if self.wideband:
            self._send(pcm16k, frame.out, block_bytes=block_bytes)
        elif pcm8k:
            # The gain control and the resampler run once per block that goes: both carry
            # their state across calls (the gain decides every 10 ms within it), so Gemini
            # hears the same bytes as frame by frame, for one call each instead of ten.
            self._waiting8k += pcm8k
            if 2 * len(self._waiting8k) >= block_bytes:
                waited = bytes(self._waiting8k)
                self._waiting8k.clear()
                frame.out.append(CallerAudio(self.to_gemini.process_pcm8k(waited)))
        return frame

    def agent_answered(self) -> None:
        """The agent began to speak: nothing the caller said is waiting for Gemini's turn end."""
        self._loud_since_answer = False

    def _send(self, pcm16k: bytes, out: list[Any], flush: bool = False, block_bytes: int = 0) -> None:
        self._block += pcm16k
        if self._block and (flush or len(self._block) >= (block_bytes or self._block_bytes)):
            out.append(CallerAudio(bytes(self._block)))
            self._block.clear()

    def _frame_turns(self, pcm16k: bytes, frame: CallerFrame) -> None:
        """Gemini's VAD is off: the caller's turns are framed by local voice detection,
        with the audio from just before the onset sent after activityStart."""
        for update in frame.updates:
            if update.started and not self._in_activity:
                self._in_activity = True
                frame.out.append(ActivityStart())
                frame.out.append(SPEECH_STARTED)
                for block in self._preroll:
                    self._send(block, frame.out)
                self._preroll.clear()
                self._preroll_bytes = 0
        if self._in_activity:
            self._send(pcm16k, frame.out)
        else:
            self._preroll.append(pcm16k)
            self._preroll_bytes += len(pcm16k)
            while self._preroll_bytes > PREROLL_MS * 32:
                self._preroll_bytes -= len(self._preroll.popleft())
        if self._in_activity and any(update.ended for update in frame.updates):
            self._in_activity = False
            self._send(b"", frame.out, flush=True)
            frame.out.append(ActivityEnd())
