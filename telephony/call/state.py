"""A call's life as an explicit state table: every change goes through `move`, and a change
the table does not allow is a bug that raises."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class CallState(str, Enum):
    AWAITING_START = "awaiting_start"
    """Socket open, no valid `start` yet."""
    CONNECTING = "connecting"
    """`start` accepted, Gemini being opened; caller audio is queued for it."""
    ACTIVE = "active"
    ENDING = "ending"
    """A last prompt is playing (apology, shutdown); the agent is silenced."""
    ENDED = "ended"


_ALLOWED: dict[CallState, set[CallState]] = {
    CallState.AWAITING_START: {CallState.CONNECTING, CallState.ENDED},
    CallState.CONNECTING: {CallState.ACTIVE, CallState.ENDING, CallState.ENDED},
    CallState.ACTIVE: {CallState.ENDING, CallState.ENDED},
    CallState.ENDING: {CallState.ENDED},
    CallState.ENDED: set(),
}


class IllegalTransition(RuntimeError):
    """A bug: the core tried a state change its table does not allow."""


def move(current: CallState, new: CallState) -> CallState:
    """`new`, if the table allows it from `current`; else `IllegalTransition`."""
    if new not in _ALLOWED[current]:
        raise IllegalTransition(f"{current.value} -> {new.value}")
    return new


@dataclass(frozen=True)
class Ending:
    """The call is ending on a last prompt: close with `code` and `reason` once the marker
    `token` after it was heard, or at `deadline` at the latest."""

    token: int
    deadline: float
    code: int
    reason: str
