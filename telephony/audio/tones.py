"""Our own call-progress sounds as mu-law 8 kHz: the soft hold tone a caller hears while a
slow tool works (instead of silence, which sounds like a dropped call)."""

from __future__ import annotations

import numpy as np

from telephony.audio.mulaw import encode_mulaw


def hold_tone_mulaw(period_ms: int = 1500, beep_ms: int = 180, freq_hz: float = 440.0, level_dbfs: float = -30.0) -> bytes:
    """One period of a quiet beep followed by silence; played again and again while waiting."""
    rate = 8000
    t = np.arange(rate * beep_ms // 1000) / rate
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)  # 20 ms fades: soft, no clicks
    beep = 32767 * 10 ** (level_dbfs / 20) * fade * np.sin(2 * np.pi * freq_hz * t)
    samples = np.concatenate((beep, np.zeros(rate * (period_ms - beep_ms) // 1000)))
    return encode_mulaw(np.rint(samples).astype("<i2").tobytes())
