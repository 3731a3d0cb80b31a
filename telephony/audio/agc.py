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

import numpy as np

from telephony.audio.mulaw import audioop


def dbfs(rms: float) -> float:
    return 20 * math.log10(max(rms, 1e-9) / 32768)


class CallerLevel:
    """Streaming AGC on int16 PCM; one per call."""

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
    ) -> None:
        self.block = rate // 100
        self.target_dbfs = target_dbfs
        self.max_gain_db, self.min_gain_db = max_gain_db, min_gain_db
        self.rise_per_block = rise_db_per_s / 100
        self.speech_gate_dbfs = speech_gate_dbfs
        self.speech_above_noise_db = speech_above_noise_db
        self.hang_blocks = hang_ms // 10
        self.ceiling = 32768 * 10 ** (ceiling_dbfs / 20)
        self.gain_db = 0.0
        self.speech_gain_db = 0.0
        self.noise_floor_dbfs = -70.0
        self._speech_power: float | None = None
        self._speech_blocks = 0
        self._hang = 0
        self._ramp = np.arange(self.block, dtype=np.float64)

    @property
    def speech_level_dbfs(self) -> float | None:
        """The running estimate of the caller's speech level (None before any speech)."""
        return None if self._speech_power is None else 10 * math.log10(max(self._speech_power, 1e-18)) - 20 * math.log10(32768)

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
        """Level int16 samples into a new float64 array, or None where the gain is unity.

        For the caller path, which feeds the float result straight to the resampler (which
        rounds and clips once, at its output) instead of rounding here and converting back.
        """
        n = len(samples)
        if n == 0:
            return None
        # Block statistics in C (audioop on the raw bytes: a fraction of a microsecond a block,
        # where numpy's per-call overhead cost several); the decisions are scalar arithmetic.
        # The power comes from audioop's RMS, truncated to an integer: low by under 0.2 dB
        # from the speech gate (-55 dBFS) up, by under 0.9 dB at -70 dBFS line noise.
        raw = samples.tobytes()
        step = 2 * self.block
        ramps = []
        any_gain = False
        for start in range(0, 2 * n, step):
            chunk = raw[start : start + step]
            length = len(chunk) // 2
            rms = audioop.rms(chunk, 2)
            begin_db, end_db = self._decide(float(rms * rms), float(audioop.max(chunk, 2)))
            any_gain = any_gain or begin_db != 0.0 or end_db != 0.0
            ramps.append((start // 2, length, begin_db, end_db))
        if not any_gain:
            return None  # unity gain throughout: nothing to do
        x = samples.astype(np.float64)
        # The gain ramps linearly across each block (no zipper noise); in place, block by
        # block, because at 10 ms blocks a few small numpy calls beat building a gain curve.
        for start, length, begin_db, end_db in ramps:
            segment = x[start : start + length]
            begin = 10 ** (begin_db / 20)
            if begin_db == end_db:
                segment *= begin
            else:
                slope = (10 ** (end_db / 20) - begin) / max(length - 1, 0.5)
                segment *= self._ramp[:length] * slope + begin
        return x

    def _decide(self, power: float, peak: float) -> tuple[float, float]:
        """Gain (dB) at the start and the end of one block, and the new state."""
        level = dbfs(math.sqrt(power))
        # Noise floor: follows quiet blocks down at once, creeps up slowly (0.5 dB/s).
        self.noise_floor_dbfs = min(level, self.noise_floor_dbfs + 0.005)
        speech = level > self.speech_gate_dbfs and level > self.noise_floor_dbfs + self.speech_above_noise_db
        if speech:
            # Speech level in the power domain: a running mean over the first 2 s of speech,
            # then a 2 s memory. Syllables must not move it, or the AGC would flatten the
            # speech envelope (which intelligibility, STOI, depends on).
            self._speech_blocks += 1
            weight = max(1 / self._speech_blocks, 0.005)
            self._speech_power = power if self._speech_power is None else (1 - weight) * self._speech_power + weight * power
            self._hang = self.hang_blocks
            wanted = min(max(self.target_dbfs - (self.speech_level_dbfs or level), self.min_gain_db), self.max_gain_db)
            step = self.rise_per_block
            self.speech_gain_db += max(-step, min(step, wanted - self.speech_gain_db))
        elif self._hang > 0:
            self._hang -= 1  # a pause inside speech: keep the gain
        talking = speech or self._hang > 0
        # Outside speech the gain is never above unity: line noise is not lifted. Speech
        # onsets get the speech gain back within this block (a 10 ms fade-in).
        target = self.speech_gain_db if talking else min(self.speech_gain_db, 0.0)
        if peak > 0:
            target = min(target, 20 * math.log10(self.ceiling / peak))  # never past the ceiling
        begin = self.gain_db
        if target < begin and peak * 10 ** (begin / 20) > self.ceiling:
            begin = target  # a ramp down would clip: attack at once
        self.gain_db = target
        return begin, target
