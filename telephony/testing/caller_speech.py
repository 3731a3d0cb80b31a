"""Speech for conversation tests: the caller's lines as Twilio would carry them (espeak-ng
where installed, otherwise a deterministic stand-in with the rhythm of speech), the emulated
agent's voice, and the quiet of a real phone line."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from telephony.audio.mulaw import encode_mulaw
from telephony.audio.wav import read_wav, resample_whole
from telephony.testing.scripted_model import tone24k

TRAILING_SILENCE_MS = 900
"""After each line the caller is quiet this long, so that the model's voice detection (500 ms
of silence by default) ends the turn."""


def caller_speech_mulaw(text: str) -> tuple[bytes, float]:
    """The caller saying `text`, as Twilio's mu-law 8 kHz, then a pause that ends the turn;
    and how long the speech itself lasts (seconds)."""
    samples = espeak_8k(text)
    if samples is None:
        samples = speech_like(text, 8000)
    pause = line_noise(TRAILING_SILENCE_MS * 8)
    mulaw = encode_mulaw(np.concatenate([samples.astype(np.int16), pause]).astype("<i2").tobytes())
    return mulaw, len(samples) / 8000


def espeak_8k(text: str) -> np.ndarray | None:
    """`text` spoken by espeak-ng at 8 kHz, or None where it is not installed."""
    if shutil.which("espeak-ng") is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "line.wav"
        done = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "175", "-w", str(wav), text], capture_output=True)
        if done.returncode != 0:
            return None
        samples, rate = read_wav(wav)
    return resample_whole(samples, rate, 8000)


def speech_like(text: str, rate: int) -> np.ndarray:
    """A deterministic stand-in for speech: a voiced tone with a syllable rhythm (4 per
    second), as long as the words would take to say (about 65 ms a character, 0.5-8 s)."""
    seconds = min(8.0, max(0.5, 0.065 * len(text)))
    t = np.arange(int(seconds * rate)) / rate
    voice = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((140.0, 280.0, 420.0, 700.0)))
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t) ** 2
    return np.rint(5000 * voice * syllables / 1.6).astype(np.int16)


def speech_like_24k(text: str) -> np.ndarray:
    """The emulated agent's voice for `text` (24 kHz): a tone as long as the words."""
    return tone24k(min(8.0, max(0.4, 0.06 * len(text))), freq_hz=220.0) if text else np.zeros(0, np.int16)


def line_noise(samples: int) -> np.ndarray:
    """A quiet line (never digital silence, as on a real phone line): about -66 dBFS."""
    rng = np.random.default_rng(samples)
    return np.rint(rng.normal(0, 16, samples)).astype(np.int16)
