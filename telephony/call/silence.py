"""A caller who says nothing: checked on, then said goodbye to.

When the agent has finished speaking (its reply played out, no tool running) and the caller
says nothing, the model is asked to check in after `reprompt_s`; after `hang_up_s` more of
silence it is asked to say goodbye, and once that has been heard (or `goodbye_max_s` passed)
the call ends with reason `silence`. A caller who walked away or a dead line would otherwise
keep a Gemini session and a call slot until Twilio's stream ends.

Silence only counts while it is the caller's turn: never while the agent talks or works (a
tool, a model that has not answered yet: that is `stall`'s business). Speech or a keypad press
starts it all over.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class SilenceRules:
    reprompt_s: float = 10.0
    """Caller silence before the model checks in (0: never)."""
    hang_up_s: float = 10.0
    """Further silence, after the check-in, before the agent says goodbye (0: never)."""
    goodbye_max_s: float = 8.0
    """The most the goodbye may take before the call ends anyway."""


class Silence(str, Enum):
    CHECK_IN = "check_in"
    """Ask the model to check whether the caller is still there."""
    SAY_GOODBYE = "say_goodbye"
    """Ask the model to say goodbye: the call ends once it has been heard."""
    HANG_UP = "hang_up"
    """End the call now (the goodbye was heard, or took too long)."""


class SilenceWatch:
    def __init__(self, rules: SilenceRules) -> None:
        self.rules = rules
        self.since: float | None = None
        """Since when the caller has been silent on their turn (None: not their turn)."""
        self.checked_in = False
        self.goodbye_until: float | None = None
        """Saying goodbye: the call ends at this time at the latest."""
        self.agent_owes_reply = False
        """The caller spoke (or a tool answered) and the agent has not replied yet."""

    def begin(self, now: float) -> None:
        """The call is up: a caller who says nothing from the start is silent too."""
        self.since = now

    def caller_spoke(self) -> None:
        self.since, self.checked_in, self.goodbye_until = None, False, None
        self.agent_owes_reply = True

    def agent_busy(self) -> None:
        """The agent talks or a tool runs: not the caller's turn."""
        self.since = None

    def reply_due(self) -> None:
        """A tool answered: the model will speak next."""
        self.since, self.agent_owes_reply = None, True

    def agent_replied(self) -> None:
        self.agent_owes_reply = False

    def agent_done(self, now: float) -> Silence | None:
        """The agent's reply has been heard and nothing runs: the caller's turn starts (or,
        after a goodbye, the call ends)."""
        if self.goodbye_until is not None and not self.agent_owes_reply:
            return Silence.HANG_UP
        if self.since is None and not self.agent_owes_reply:
            self.since = now
        return None

    def deadline(self) -> float | None:
        if self.goodbye_until is not None:
            return self.goodbye_until
        wait = self.rules.hang_up_s if self.checked_in else self.rules.reprompt_s
        if self.since is None or self.rules.reprompt_s <= 0 or wait <= 0:
            return None
        return self.since + wait

    def tick(self, now: float) -> Silence | None:
        if self.goodbye_until is not None:
            return Silence.HANG_UP if now >= self.goodbye_until else None
        due = self.deadline()
        if due is None or now < due:
            return None
        if not self.checked_in:
            self.checked_in, self.since = True, now  # counting on, in case the model says nothing
            self.agent_owes_reply = False
            return Silence.CHECK_IN
        self.since, self.goodbye_until = None, now + self.rules.goodbye_max_s
        self.agent_owes_reply = True  # its goodbye: the call ends once that is heard
        return Silence.SAY_GOODBYE
