"""Whether the per-frame audio work runs in C.

`_kernels.c` does the caller's gain control (`agc`) and both resamplers' filters (`resample`)
in two C calls a frame; it is built at install where a C compiler is found. Without it the
Python and numpy code of those modules does the same work (the same gains bit for bit, the same
filter output within one least significant bit), more slowly: at 160 samples a frame the cost
is per-call overhead, not arithmetic. Each of those classes takes `compiled=False` to run the
Python code anyway, which is how the tests compare the two.
"""

from __future__ import annotations

import sys

try:
    from telephony.audio import _kernels
except ImportError:  # built without a C compiler
    _kernels = None  # type: ignore[assignment]

COMPILED: bool = _kernels is not None and sys.byteorder == "little"
"""True where the per-frame audio work runs in C, False where it runs in Python and numpy."""


def use_compiled(compiled: bool | None) -> bool:
    """None: C where it was built; False: Python; True: C, or say it is missing."""
    if compiled and not COMPILED:
        raise RuntimeError("the C kernels (telephony/audio/_kernels.c) were not built when this package was installed")
    return COMPILED if compiled is None else compiled


__all__ = ["COMPILED", "_kernels", "use_compiled"]
