"""When has the agent's goodbye been heard? The rule end_call and transfer_call wait on.

After end_call the model usually says goodbye, often a second or two after the tool's result
(native-audio models wait before speaking); its turn is over when it completes and has been
played out. If it says nothing more for `grace_s` the goodbye is taken as said; `max_s` caps
the whole wait. On Extended Thinking an IN_PROGRESS turn is not the end: the agent works on
and will speak again, unless what it waits for is one of our own tools (a transfer announced
before its call), and the grace does not run meanwhile. Pure: the call core feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GoodbyeWatch:
    token: int
    """The driver's waiter, settled (ok) once the goodbye was heard."""
    since: float
    grace_s: float
    max_s: float
    last_audio_at: float | None = None
    turn_done_after_audio: bool = False

    def agent_audio(self, now: float) -> None:
        self.last_audio_at = now
        self.turn_done_after_audio = False

    def turn_complete(self, final: bool) -> None:
        if final and self.last_audio_at is not None:
            self.turn_done_after_audio = True

    def deadlines(self) -> tuple[float, float]:
        """When the whole wait ends, and when the quiet grace would."""
        return self.since + self.max_s, max(self.since, self.last_audio_at or self.since) + self.grace_s

    def heard(self, now: float, playout_idle: bool, agent_working: bool) -> bool:
        """Has the goodbye been heard (or waited for long enough) at `now`?"""
        if not playout_idle and now < self.since + self.max_s:
            return False
        quiet_since = max(self.since, self.last_audio_at or self.since)
        quiet_enough = not agent_working and now >= quiet_since + self.grace_s
        return self.turn_done_after_audio or quiet_enough or now >= self.since + self.max_s
