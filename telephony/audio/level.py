"""The loudness of a block of PCM, in C (audioop): cheap enough to ask of every block."""

from __future__ import annotations

from telephony.audio.mulaw import audioop

SPEECH_RMS = 300
"""About -40 dBFS: above a phone line's idle noise (around -60 dBFS), below quiet speech."""
QUIET_RMS = 100
"""About -50 dBFS, before gain control: a line's idle noise is below it, the softest speech
above it. Where quiet audio may wait (`telephony.call.caller_audio`), so that an onset is
never held back with it: lower than `SPEECH_RMS` on purpose."""


def rms16(pcm16: bytes) -> int:
    """Root mean square of 16-bit little-endian PCM samples (0 for no samples)."""
    return int(audioop.rms(pcm16[: len(pcm16) & ~1], 2))


def has_speech_level(pcm16: bytes) -> bool:
    return rms16(pcm16) >= SPEECH_RMS
