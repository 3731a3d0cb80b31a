"""What a call holds, counted while it lives: a leak shows as a count that stays up at idle.

Each object a call creates that should die with it (the call core, its driver, both Gemini
session layers and the SDK's connection, the Twilio socket) is added to a weak set of its kind
as it is made; `counts()` is what is still alive. Served at /metrics as
`telephony_live_objects{kind=...}` and sampled by `telephony bench soak` at idle. A weak set
keeps nothing alive, and adding to it costs a dictionary insert per object, once per call.
"""

from __future__ import annotations

import weakref

_LIVE: dict[str, weakref.WeakSet[object]] = {}


def track(obj: object, kind: str | None = None) -> None:
    """Count `obj` under `kind` (its class name by default) while it lives."""
    _LIVE.setdefault(kind or type(obj).__name__, weakref.WeakSet()).add(obj)


def counts() -> dict[str, int]:
    return {kind: len(objects) for kind, objects in sorted(_LIVE.items())}
