"""The hold tone: what the caller hears while they wait for a slow tool or a stalled model.

It plays only into silence. Each reason to wait (a tool past `hold_after_s`, a stall being
recovered) adds one; the tone stops with the last, or at once when the caller speaks. While
the agent talks over a running NON_BLOCKING tool the tone pauses, and comes back only when
nothing of the agent is audible. It is played one period at a time: each period ends with a
marker, and while a reason remains the next period follows when the last one was heard.
"""

from __future__ import annotations

from collections.abc import Callable

from telephony.audio.tones import hold_tone_mulaw
from telephony.call.playout import Playout, Source


class HoldTone:
    def __init__(self, playout: Playout, new_token: Callable[[], int]) -> None:
        self._playout = playout
        self._new_token = new_token
        self.reasons = 0
        """Slow tools and stalls the caller is waiting for."""
        self.token: int | None = None
        """The marker of the period playing (or queued); None while the tone is off."""

    def add(self, may_play: bool) -> bool:
        """One more reason to wait; True when a period of the tone was queued."""
        self.reasons += 1
        return self.resume(may_play)

    def drop(self) -> None:
        """One reason fewer; the tone stops with the last."""
        self.reasons = max(0, self.reasons - 1)
        if not self.reasons:
            self.end()

    def resume(self, may_play: bool) -> bool:
        """A reason remains and nothing of the agent is audible: the tone (again). True when
        a period was queued (the core releases it)."""
        if self.reasons and self.token is None and may_play and not self._playout.agent_audible:
            self.play_period()
            return True
        return False

    def play_period(self) -> None:
        self._playout.hold(hold_tone_mulaw(), Source.HOLD)
        self.token = self._new_token()
        self._playout.hold_marker(self.token)

    def period_heard(self, token: int) -> bool:
        """`token` was heard: True if it was this tone's and another period is due."""
        return token == self.token and self.reasons > 0

    def pause(self) -> None:
        """The agent speaks while the reason remains: the tone stops until `resume`."""
        self.token = None
        self._playout.drop_held(Source.HOLD)

    def end(self) -> None:
        """No more waiting (the caller spoke, the call ends): no reason is left."""
        self.reasons = 0
        self.pause()
