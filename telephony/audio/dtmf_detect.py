"""Is there a keypad tone in this 20 ms of caller audio? (Goertzel power at the eight DTMF
frequencies, one matrix product per frame.)

Twilio reports a key press as a `dtmf` event once the tone is over; the tone itself has
already travelled in the caller's audio. When an agent takes secret digits on the keypad
(`telephony.Keypad`), frames that carry a tone are muted toward Gemini and the recording, so
that the model never hears what it must not know, before or after the product starts
collecting.
"""

from __future__ import annotations

import numpy as np

from telephony.audio.dtmf import COLUMNS, ROWS

RATE = 8000
FRAME = 160


class DtmfToneDetector:
    """`has_tone(pcm8k)`: a row and a column frequency each stand out, and the two hold
    most of the frame's energy (speech spreads its energy; a tone pair does not)."""

    def __init__(self, frame: int = FRAME, share: float = 0.5, twist_db: float = 8.0) -> None:
        t = np.arange(frame) / RATE
        freqs = np.array(ROWS + COLUMNS, dtype=np.float64)
        self._cos = np.cos(2 * np.pi * np.outer(freqs, t))
        self._sin = np.sin(2 * np.pi * np.outer(freqs, t))
        self._frame = frame
        self._share = share
        self._twist = 10 ** (twist_db / 10)

    def has_tone(self, pcm8k: np.ndarray) -> bool:
        samples = np.asarray(pcm8k, dtype=np.float64)[: self._frame]
        if len(samples) < self._frame:
            return False
        energy = float(samples @ samples)
        if energy < self._frame * 100.0**2:  # quieter than about -50 dBFS: no tone worth hiding
            return False
        power = (self._cos @ samples) ** 2 + (self._sin @ samples) ** 2  # |DFT bin|^2 at each frequency
        rows, columns = power[:4], power[4:]
        row, column = float(rows.max()), float(columns.max())
        if row * self._twist < column or column * self._twist < row:  # the two tones of a pair are of like level
            return False
        # A pure tone of amplitude A over N samples has |X|^2 = (A N / 2)^2 and energy A^2 N / 2.
        tone_energy = 2 * (row + column) / self._frame
        return tone_energy >= self._share * energy
