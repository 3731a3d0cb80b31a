"""Is the caller talking? Local voice detection on the 8 kHz phone audio (webrtcvad).

Gemini's own VAD only interrupts a reply it is still generating; once a reply is fully
generated (the real service runs far ahead of real time), only we can notice the caller
talking over it. This detector runs on every caller frame (about 1 us per 20 ms frame) and
reports how long the caller has been speaking without a break.

`min_speech_ms` is the echo and noise guard: a burst shorter than that ("mm-hm", a cough,
the agent's own voice leaking back through the line) never counts as the caller taking the
turn. Longer guards ignore more back-channel noise but make barge-in later by the same
amount.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import webrtcvad

FRAME_MS = 20
_FRAME_BYTES = 8000 * 2 * FRAME_MS // 1000  # PCM16 at 8 kHz


@dataclass(frozen=True, slots=True)
class SpeechUpdate:
    """What one frame changed."""

    started: bool = False
    """The caller has now spoken for `onset_ms` without a break."""
    barged_in: bool = False
    """The caller has now spoken for `min_speech_ms` without a break (a real turn-take)."""
    ended: bool = False
    """The caller has been silent for `silence_ms` after speaking."""


class CallerVoice:
    """Speech/silence runs over 20 ms frames of 8 kHz PCM16."""

    def __init__(self, aggressiveness: int = 3, onset_ms: int = 100, min_speech_ms: int = 300, silence_ms: int = 500) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self.onset_ms = max(FRAME_MS, onset_ms)
        self.min_speech_ms = max(FRAME_MS, min_speech_ms)
        self.silence_ms = max(FRAME_MS, silence_ms)
        self._pending = b""
        self.speech_run_ms = 0
        self.silence_run_ms = 0
        self.speaking = False
        """True from onset until `silence_ms` of silence."""
        self.heard_speech = False
        """The last `feed` had a frame of speech in it (a soft one too, below any level gate)."""

    def feed(self, pcm8k: bytes) -> list[SpeechUpdate]:
        frames: Iterable[bytes]
        if not self._pending and len(pcm8k) == _FRAME_BYTES:
            frames = (pcm8k,)  # Twilio's own 20 ms: no joining, no slicing
        else:
            data = self._pending + pcm8k
            whole = len(data) // _FRAME_BYTES * _FRAME_BYTES
            self._pending = data[whole:]
            frames = (data[i : i + _FRAME_BYTES] for i in range(0, whole, _FRAME_BYTES))
        updates = []
        self.heard_speech = False
        for frame in frames:
            speech = self._vad.is_speech(frame, 8000)
            self.heard_speech = self.heard_speech or speech
            update = self._frame(speech)
            if update is not None:
                updates.append(update)
        return updates

    def _frame(self, speech: bool) -> SpeechUpdate | None:
        if speech:
            before = self.speech_run_ms
            self.speech_run_ms += FRAME_MS
            self.silence_run_ms = 0
            started = not self.speaking and self.speech_run_ms >= self.onset_ms
            if started:
                self.speaking = True
            barged = before < max(self.min_speech_ms, self.onset_ms) <= self.speech_run_ms
            return SpeechUpdate(started=started, barged_in=barged) if started or barged else None
        self.speech_run_ms = 0
        if not self.speaking:
            return None
        self.silence_run_ms += FRAME_MS
        if self.silence_run_ms >= self.silence_ms:
            self.speaking = False
            self.silence_run_ms = 0
            return SpeechUpdate(ended=True)
        return None
