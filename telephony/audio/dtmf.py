"""In-band DTMF (ITU-T Q.23 tone pairs) as mu-law 8 kHz, for navigating phone menus (IVRs).

Twilio's `<Play digits>` would need new TwiML, which ends the media stream, so the agent's
key presses are played into the call as audio instead.
"""

from __future__ import annotations

import numpy as np

from telephony.audio.mulaw import encode_mulaw

ROWS = (697, 770, 852, 941)
COLUMNS = (1209, 1336, 1477, 1633)
KEYPAD = ("123A", "456B", "789C", "*0#D")
FREQUENCIES = {key: (ROWS[r], COLUMNS[c]) for r, line in enumerate(KEYPAD) for c, key in enumerate(line)}
VALID_DIGITS = frozenset(FREQUENCIES)


def dtmf_mulaw(digits: str, tone_ms: int = 100, gap_ms: int = 100, level_dbfs: float = -10.0, rate: int = 8000) -> bytes:
    """Tone pairs for `digits` (0-9, *, #, A-D), each `tone_ms` long, separated by silence."""
    unknown = set(digits.upper()) - VALID_DIGITS
    if unknown:
        raise ValueError(f"not DTMF digits: {''.join(sorted(unknown))!r}")
    amplitude = 32767 * 10 ** (level_dbfs / 20) / 2  # two components share the level
    t = np.arange(int(rate * tone_ms / 1000)) / rate
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.004)  # 4 ms fades: no clicks
    gap = np.zeros(int(rate * gap_ms / 1000))
    parts = []
    for digit in digits.upper():
        low, high = FREQUENCIES[digit]
        parts.append(amplitude * ramp * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)))
        parts.append(gap)
    samples = np.rint(np.concatenate(parts)).astype("<i2") if parts else np.zeros(0, "<i2")
    return encode_mulaw(samples.tobytes())
