"""Audio for the phone line: G.711 mu-law, streaming resamplers and the two per-call transcoders.

- `mulaw`: where mu-law is decoded and encoded (G.711, via audioop).
- `resample`: streaming polyphase FIR resamplers (x2 for the caller, /3 for the agent).
- `transcode`: `CallerToGemini` and `GeminiToCaller`, one of each per call.
- `agc`: the caller's gain control.
- `compiled`: whether `_kernels.c` (the gain control and both filters in C) was built, or the
  Python and numpy code of `agc` and `resample` does the same work.
- `wav`: one-shot conversions and WAV files for fixtures, demos and tests.
"""

from telephony.audio.mulaw import decode_mulaw, encode_mulaw
from telephony.audio.resample import Decimator3, Interpolator2
from telephony.audio.transcode import (
    FRAME_BYTES,
    CallerToGemini,
    GeminiToCaller,
)

__all__ = [
    "FRAME_BYTES",
    "CallerToGemini",
    "Decimator3",
    "GeminiToCaller",
    "Interpolator2",
    "decode_mulaw",
    "encode_mulaw",
]
