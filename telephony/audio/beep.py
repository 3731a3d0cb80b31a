"""Is this the beep of an answering machine? A steady single tone (400-2100 Hz) held for a
while: per 20 ms frame, the strongest spectral peak must carry most of the frame's energy and
stay at the same pitch from frame to frame. Speech moves in pitch and spreads its energy; a
voicemail beep does neither. It answers at the END of the beep: a machine records only after it,
so a message started on the beep loses its first words."""

from __future__ import annotations

import numpy as np

RATE = 8000
FRAME = 160


class BeepDetector:
    def __init__(self, min_ms: int = 160, share: float = 0.6, low_hz: float = 400.0, high_hz: float = 2100.0, max_ms: int = 1500) -> None:
        self.frames_needed = max(1, min_ms // 20)
        self.frames_max = max(self.frames_needed, max_ms // 20)
        """A tone that goes on this long counts as over (a machine that beeps on and on)."""
        self.share = share
        self.window = np.hanning(FRAME)
        freqs = np.fft.rfftfreq(FRAME, 1 / RATE)
        self.band = (freqs >= low_hz) & (freqs <= high_hz)
        self._run = 0
        self._bin = -10

    def feed(self, pcm8k: np.ndarray) -> bool:
        """One 20 ms frame; True when a beep of at least `min_ms` has just ended (this frame is
        the first without it), or has lasted `max_ms`."""
        was = self._run
        self._feed(pcm8k)
        if self._run == self.frames_max:
            return True
        return was >= self.frames_needed and self._run < was and was < self.frames_max

    def _feed(self, pcm8k: np.ndarray) -> None:
        samples = np.asarray(pcm8k, dtype=np.float64)[:FRAME]
        if len(samples) < FRAME or float(samples @ samples) < FRAME * 300.0**2:  # quieter than about -40 dBFS
            self._run = 0
            self._bin = -10
            return
        power = np.abs(np.fft.rfft(samples * self.window)) ** 2
        peak = int(np.argmax(power))
        around = float(power[max(0, peak - 1) : peak + 2].sum())
        steady = self.band[peak] and around >= self.share * float(power.sum())
        if steady and abs(peak - self._bin) <= 1:
            self._run += 1
        else:
            self._run = 1 if steady else 0
        self._bin = peak if steady else -10
