"""Types of the C kernels (`_kernels.c`); see `telephony.audio.agc`, `resample` and `compiled`."""

from array import array

import numpy as np

def fir_stream(
    history: np.ndarray,
    phases: np.ndarray,
    up: int,
    down: int,
    first: int,
    samples: bytes,
    gain_ramps: bytes | None,
    /,
) -> bytes: ...
def gain_ramps(state: array, samples: bytes, /) -> bytes | None: ...
