"""Caller level normalisation: a slow automatic gain control for the caller -> Gemini path.

Phone audio often reaches us quiet (-35 dBFS speech is common), and the model's voice
detection then misses short answers. This AGC brings speech towards -20 dBFS:

- it adapts only on speech (blocks well above the line's noise floor), so it does not pump
  up during pauses;
- it follows the speech level over seconds, not syllables, and moves its gain at most
  `rise_db_per_s` either way, bounded by `max_gain_db`;
- it attacks at once: a block that would exceed -1 dBFS gets its gain cut before it is
  played, so it never clips;
- outside speech (after a short hang time) the gain falls back to unity, so line noise is
  never amplified, and digital silence stays silent.

It runs on 8 kHz linear PCM in 10 ms blocks, with the gain ramped across each block (no
zipper noise), and holds nothing back: it adds no delay.
"""

from __future__ import annotations

import math
from array import array

import numpy as np

from telephony.audio.compiled import _kernels, use_compiled
from telephony.audio.mulaw import audioop

# The gain control's parameters and state live in one float64 array, which the C kernel reads
# and updates in place (`_kernels.c` names the same positions).
_BLOCK, _TARGET, _MAX_GAIN, _MIN_GAIN, _RISE, _GATE, _ABOVE_NOISE, _HANG_BLOCKS, _CEILING = range(9)
_GAIN, _SPEECH_GAIN, _NOISE_FLOOR, _SPEECH_POWER, _SPEECH_BLOCKS, _HANG, _STATE_SIZE = range(9, 16)
_NO_SPEECH_YET = -1.0  # in place of the speech power before any speech


def dbfs(rms: float) -> float:
    return 20 * math.log10(max(rms, 1e-9) / 32768)


class CallerLevel:
    """Streaming AGC on int16 PCM; one per call.

    `compiled`: None decides in C where it was built, False always in Python (tests compare
    the two), True insists on C.
    """

    def __init__(
        self,
        rate: int = 8000,
        target_dbfs: float = -20.0,
        max_gain_db: float = 24.0,
        min_gain_db: float = -12.0,
        rise_db_per_s: float = 30.0,
        speech_gate_dbfs: float = -55.0,
        speech_above_noise_db: float = 10.0,
        hang_ms: int = 300,
        ceiling_dbfs: float = -1.0,
        compiled: bool | None = None,
    ) -> None:
        self.compiled = use_compiled(compiled)
        self.block = rate // 100
        state = [0.0] * _STATE_SIZE
        state[_BLOCK] = self.block
        state[_TARGET] = target_dbfs
        state[_MAX_GAIN], state[_MIN_GAIN] = max_gain_db, min_gain_db
        state[_RISE] = rise_db_per_s / 100  # dB a block
        state[_GATE] = speech_gate_dbfs
        state[_ABOVE_NOISE] = speech_above_noise_db
        state[_HANG_BLOCKS] = hang_ms // 10
        state[_CEILING] = 32768 * 10 ** (ceiling_dbfs / 20)
        state[_NOISE_FLOOR] = -70.0
        state[_SPEECH_POWER] = _NO_SPEECH_YET
        self._state = array("d", state)

    @property
    def gain_db(self) -> float:
        """The gain applied at the end of the last block."""
        return self._state[_GAIN]

    @property
    def noise_floor_dbfs(self) -> float:
        """The line's noise floor as the gain control estimates it."""
        return self._state[_NOISE_FLOOR]

    @property
    def speech_level_dbfs(self) -> float | None:
        """The running estimate of the caller's speech level (None before any speech)."""
        power = self._state[_SPEECH_POWER]
        return None if power == _NO_SPEECH_YET else 10 * math.log10(max(power, 1e-18)) - 20 * math.log10(32768)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Level int16 samples; returns int16 (rounded, clipped to the int16 range)."""
        levelled = self.apply(samples)
        if levelled is None:
            return samples.astype(np.int16)
        np.rint(levelled, out=levelled)
        np.minimum(levelled, 32767, out=levelled)
        np.maximum(levelled, -32768, out=levelled)
        return levelled.astype(np.int16)

    def apply(self, samples: np.ndarray) -> np.ndarray | None:
        """Level int16 samples into a new float64 array, or None where the gain is unity."""
        ramps = self.gain_ramps(samples.astype("<i2", copy=False).tobytes())
        return None if ramps is None else apply_gain_ramps(samples, ramps)

    def gain_ramps(self, pcm16: bytes) -> bytes | None:
        """Decide the gain of each 10 ms block of PCM16 LE bytes, or None where it is unity
        throughout; the resampler applies the ramps on its way in (in C where built, else
        `apply_gain_ramps`), so the caller's frame is converted to floats once.

        float64 quadruples as bytes: (start sample, length, gain dB at the block's first
        sample, at its last)."""
        if self.compiled:
            return _kernels.gain_ramps(self._state, pcm16)
        if not pcm16:
            return None
        # Block statistics in C (audioop on the raw bytes: a fraction of a microsecond a block,
        # where numpy's per-call overhead cost several); the decisions are scalar arithmetic.
        # The power comes from audioop's RMS, truncated to an integer: low by under 0.2 dB
        # from the speech gate (-55 dBFS) up, by under 0.9 dB at -70 dBFS line noise.
        step = 2 * self.block
        ramps = array("d")
        any_gain = False
        for start in range(0, len(pcm16), step):
            chunk = pcm16[start : start + step]
            rms = audioop.rms(chunk, 2)
            begin_db, end_db = self._decide(float(rms * rms), float(audioop.max(chunk, 2)))
            any_gain = any_gain or begin_db != 0.0 or end_db != 0.0
            ramps.extend((start // 2, len(chunk) // 2, begin_db, end_db))
        return ramps.tobytes() if any_gain else None

    def _decide(self, power: float, peak: float) -> tuple[float, float]:
        """Gain (dB) at the start and the end of one block, and the new state (`_kernels.c`
        does the same operations in the same order)."""
        s = self._state
        level = dbfs(math.sqrt(power))
        # Noise floor: follows quiet blocks down at once, creeps up slowly (0.5 dB/s).
        noise_floor = s[_NOISE_FLOOR] = min(level, s[_NOISE_FLOOR] + 0.005)
        speech = level > s[_GATE] and level > noise_floor + s[_ABOVE_NOISE]
        if speech:
            # Speech level in the power domain: a running mean over the first 2 s of speech,
            # then a 2 s memory. Syllables must not move it, or the AGC would flatten the
            # speech envelope (which intelligibility, STOI, depends on).
            s[_SPEECH_BLOCKS] += 1
            weight = max(1 / s[_SPEECH_BLOCKS], 0.005)
            old = s[_SPEECH_POWER]
            s[_SPEECH_POWER] = power if old == _NO_SPEECH_YET else (1 - weight) * old + weight * power
            s[_HANG] = s[_HANG_BLOCKS]
            wanted = min(max(s[_TARGET] - (self.speech_level_dbfs or level), s[_MIN_GAIN]), s[_MAX_GAIN])
            step = s[_RISE]
            s[_SPEECH_GAIN] += max(-step, min(step, wanted - s[_SPEECH_GAIN]))
        elif s[_HANG] > 0:
            s[_HANG] -= 1  # a pause inside speech: keep the gain
        talking = speech or s[_HANG] > 0
        # Outside speech the gain is never above unity: line noise is not lifted. Speech
        # onsets get the speech gain back within this block (a 10 ms fade-in).
        target = s[_SPEECH_GAIN] if talking else min(s[_SPEECH_GAIN], 0.0)
        if peak > 0:
            target = min(target, 20 * math.log10(s[_CEILING] / peak))  # never past the ceiling
        begin = s[_GAIN]
        if target < begin and peak * 10 ** (begin / 20) > s[_CEILING]:
            begin = target  # a ramp down would clip: attack at once
        s[_GAIN] = target
        return begin, target


def apply_gain_ramps(samples: np.ndarray, gain_ramps: bytes) -> np.ndarray:
    """Level int16 samples by gain ramps into a new float64 array (what the C filter does on
    the way in): quadruples (start, length, begin_db, end_db), each a constant gain or one
    moving linearly from the block's first sample to its last (no zipper noise)."""
    x = samples.astype(np.float64)
    ramps = memoryview(gain_ramps).cast("d")
    for index in range(0, len(ramps), 4):
        start, length = int(ramps[index]), int(ramps[index + 1])
        begin_db, end_db = ramps[index + 2], ramps[index + 3]
        segment = x[start : start + length]
        begin = 10 ** (begin_db / 20)
        if begin_db == end_db:
            segment *= begin
        else:
            slope = (10 ** (end_db / 20) - begin) / max(length - 1, 0.5)
            segment *= _RAMP[:length] * slope + begin
    return x


_RAMP = np.arange(8000, dtype=np.float64)  # sample indices within a block, for gain ramps
