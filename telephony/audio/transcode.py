"""The two per-call transcoders between the phone line and Gemini Live.

`CallerToGemini`: Twilio mu-law 8 kHz -> PCM16 LE 16 kHz (what Gemini Live takes in).
`GeminiToCaller`: PCM16 LE 24 kHz (what Gemini Live speaks) -> mu-law 8 kHz in 20 ms frames.

Both take bytes in any chunking, including odd byte counts and empty chunks, and neither
loses nor duplicates a sample: a stray byte of a half sample waits for the next chunk, and a
partial 20 ms frame waits for more audio or for `flush()`.
"""

from __future__ import annotations

from telephony.audio.agc import CallerLevel
from telephony.audio.mulaw import decode_mulaw, encode_mulaw
from telephony.audio.resample import Decimator3, Interpolator2

TWILIO_RATE = 8000
GEMINI_INPUT_RATE = 16000
GEMINI_OUTPUT_RATE = 24000
FRAME_MS = 20
FRAME_BYTES = TWILIO_RATE * FRAME_MS // 1000  # 160 mu-law bytes = 20 ms at 8 kHz


class CallerToGemini:
    """Caller audio: mu-law 8 kHz bytes -> PCM16 LE 16 kHz bytes, streaming.

    With `level` (a `CallerLevel`), quiet callers are brought up to speech level first.
    """

    def __init__(self, level: CallerLevel | None = None, compiled: bool | None = None) -> None:
        self._resampler = Interpolator2(compiled)
        self.level = level

    @property
    def delay_ms(self) -> float:
        """Audio held back by this direction (the resampler's group delay)."""
        return self._resampler.delay_ms

    def process(self, mulaw: bytes) -> bytes:
        """Transcode one chunk (usually one 20 ms Twilio frame -> 640 bytes)."""
        if not mulaw:
            return b""
        return self.process_pcm8k(decode_mulaw(mulaw))

    def process_pcm8k(self, pcm8k_bytes: bytes) -> bytes:
        """The same from already-decoded 8 kHz PCM16 (the call core decodes once and also
        runs voice detection on it), one frame or several that waited together: the gain
        control decides every 10 ms within a chunk and the filter carries its history, so
        the bytes are the same either way, and one call on 200 ms costs little more than one
        on 20 ms (most of the cost is numpy's per-call overhead on 160 samples)."""
        if not pcm8k_bytes:
            return b""
        # The gain is applied on the resampler's way in (one conversion to floats, one
        # rounding at its output); None at unity gain, where the samples go as they came.
        ramps = None if self.level is None else self.level.gain_ramps(pcm8k_bytes)
        return self._resampler.process_pcm16(pcm8k_bytes, ramps)

    def flush(self) -> bytes:
        """Emit the resampler's tail and start afresh (call end)."""
        return self._resampler.flush_pcm16()


class GeminiToCaller:
    """Agent audio: PCM16 LE 24 kHz bytes -> mu-law 8 kHz, cut into 20 ms Twilio frames."""

    def __init__(self, frame_bytes: int = FRAME_BYTES, compiled: bool | None = None) -> None:
        if frame_bytes <= 0:
            raise ValueError("frame_bytes must be positive")
        self.frame_bytes = frame_bytes
        self._resampler = Decimator3(compiled)
        self._odd_byte = b""
        self._pending = bytearray()

    @property
    def delay_ms(self) -> float:
        """Audio held back by the resampler; a partial frame may wait up to 20 ms more."""
        return self._resampler.delay_ms

    @property
    def pending_bytes(self) -> int:
        """mu-law bytes waiting to fill the next frame."""
        return len(self._pending)

    def process(self, pcm24k: bytes) -> list[bytes]:
        """Transcode one chunk; returns the complete 20 ms mu-law frames it finishes."""
        data = self._odd_byte + pcm24k
        usable = len(data) & ~1
        self._odd_byte = data[usable:]
        if usable:
            self._pending += encode_mulaw(self._resampler.process_pcm16(data[:usable]))
        return self._take_frames()

    def flush(self) -> list[bytes]:
        """End of a reply: emit the filter tail and the last partial frame, then start afresh.

        A lone stray byte (half a sample) cannot be played and is dropped here.
        """
        self._pending += encode_mulaw(self._resampler.flush_pcm16())
        frames = self._take_frames()
        if self._pending:
            frames.append(bytes(self._pending))
        self._pending.clear()
        self._odd_byte = b""
        return frames

    def reset(self) -> None:
        """Barge-in: drop everything held for the interrupted reply, including filter state."""
        self._resampler.reset()
        self._pending.clear()
        self._odd_byte = b""

    def _take_frames(self) -> list[bytes]:
        n = len(self._pending) // self.frame_bytes * self.frame_bytes
        if not n:
            return []
        block = bytes(self._pending[:n])
        del self._pending[:n]
        return [block[i : i + self.frame_bytes] for i in range(0, n, self.frame_bytes)]
