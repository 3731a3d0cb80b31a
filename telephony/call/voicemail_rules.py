"""What an agent does when an answering machine takes its outbound call, and where the call is
with it (`call.voicemail` decides)."""

from __future__ import annotations

from dataclasses import dataclass

from telephony.audio.beep import BeepDetector

DEFAULT_INSTRUCTIONS = "say who you are, why you called, and how to call back, in two or three short sentences"
VOICEMAIL_NUDGE = (
    "(An answering machine took this call and is now recording. Leave a voicemail message: {what}. "
    "Speak only the message, then stop; the call ends after it.)"
)


@dataclass(frozen=True)
class VoicemailRules:
    """`message`: say exactly this; else compose one following `instructions`; `off`: hang up."""

    message: str | None = None
    instructions: str | None = None
    off: bool = False
    beep_wait_s: float = 6.0
    leave_max_s: float = 60.0
    settle_s: float = 0.8
    """After the beep, before the message is asked for: the model's own turn detection first
    closes the machine's greeting as a turn of its own (about its silence duration), so that
    its answer to the greeting never cuts into the message."""

    def nudge(self) -> str:
        what = f'say exactly: "{self.message}"' if self.message else (self.instructions or DEFAULT_INSTRUCTIONS)
        return VOICEMAIL_NUDGE.format(what=what)


class VoicemailState:
    def __init__(self, rules: VoicemailRules) -> None:
        self.rules = rules
        self.phase = "listening"  # listening (for AnsweredBy) -> waiting_beep -> settling -> leaving -> done
        self.until: float | None = None
        self.spoke = False
        self.detector: BeepDetector | None = None

    @property
    def muted(self) -> bool:
        """The machine's audio no longer reaches the model."""
        return self.phase in ("waiting_beep", "settling", "leaving", "done")
