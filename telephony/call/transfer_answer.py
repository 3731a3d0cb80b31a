"""The person's answer to a warm transfer, decided from what happens on their leg.

A warm transfer dials a person while the caller waits on hold; the person hears a spoken
briefing ("... Press 1 or say hello to take the call, press 2 to decline") and then:

- key 1 at any time, or speech once the briefing has been heard: they take the call;
- key 2: they decline;  a hang-up, busy, no answer or a failed call: they could not take it;
- Twilio's answering-machine detection says a machine answered: not a person (a voicemail
  greeting speaks too, so speech during the briefing never counts as yes);
- nothing within `respond_within_s` of the briefing: no response.

Pure: every input carries its time, so the rules are tested without sockets or a clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Answer(enum.Enum):
    ACCEPTED = "accepted"
    DECLINED = "declined"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    MACHINE = "machine"
    HUNG_UP = "hung-up"
    NO_RESPONSE = "no-response"
    FAILED = "failed"


WHAT_HAPPENED = {
    Answer.ACCEPTED: "{who} took the call: the caller is connected to them now.",
    Answer.DECLINED: "{who} declined the call.",
    Answer.NO_ANSWER: "{who} did not answer.",
    Answer.BUSY: "{who}'s line was busy.",
    Answer.MACHINE: "{who}'s voicemail answered, not {who}.",
    Answer.HUNG_UP: "{who} hung up before taking the call.",
    Answer.NO_RESPONSE: "{who} answered but did not accept the call.",
    Answer.FAILED: "the call to {who} could not be placed.",
}
"""For the model (and the record), in words it can pass on to the caller."""

FINAL_STATUS_ANSWERS = {"busy": Answer.BUSY, "no-answer": Answer.NO_ANSWER, "failed": Answer.FAILED, "canceled": Answer.FAILED}


@dataclass
class TransferAnswer:
    respond_within_s: float = 20.0
    """After the briefing was heard: how long the person has to press a key or speak."""
    speech_to_accept_ms: float = 300.0
    """Speech after the briefing this long (in all) is a yes: a cough or a click is not."""
    answer: Answer | None = None
    decided_at: float | None = None
    briefing_heard_at: float | None = None
    speech_ms: float = 0.0
    log: list[tuple[float, str]] = field(default_factory=list)
    """What happened on the person's leg, in order (for the record and the closing tests)."""

    @property
    def decided(self) -> bool:
        return self.answer is not None

    def _decide(self, answer: Answer, now: float, why: str) -> Answer | None:
        if self.answer is not None:
            return None
        self.answer, self.decided_at = answer, now
        self.log.append((now, f"{answer.value}: {why}"))
        return answer

    def connected(self, now: float) -> None:
        self.log.append((now, "answered"))

    def briefing_heard(self, now: float) -> None:
        if self.briefing_heard_at is None:
            self.briefing_heard_at = now
            self.log.append((now, "briefing heard"))

    def key(self, digit: str, now: float) -> Answer | None:
        if digit == "1":
            return self._decide(Answer.ACCEPTED, now, "pressed 1")
        if digit == "2":
            return self._decide(Answer.DECLINED, now, "pressed 2")
        return None

    def voice(self, speaking: bool, frame_ms: float, now: float) -> Answer | None:
        """One frame of the person's audio, with or without speech in it."""
        if not speaking or self.briefing_heard_at is None:
            return None
        self.speech_ms += frame_ms
        if self.speech_ms >= self.speech_to_accept_ms:
            return self._decide(Answer.ACCEPTED, now, "spoke after the briefing")
        return None

    def answered_by(self, kind: str, now: float) -> Answer | None:
        """Twilio's `AnsweredBy` for the person's leg."""
        if kind.startswith("machine") or kind == "fax":
            return self._decide(Answer.MACHINE, now, f"answered by {kind}")
        self.log.append((now, f"answered by {kind}"))
        return None

    def status(self, status: str, now: float) -> Answer | None:
        """A status callback for the person's leg."""
        if status in FINAL_STATUS_ANSWERS:
            return self._decide(FINAL_STATUS_ANSWERS[status], now, f"call {status}")
        if status == "completed":
            return self._decide(Answer.HUNG_UP, now, "hung up")
        return None

    def hung_up(self, now: float) -> Answer | None:
        return self._decide(Answer.HUNG_UP, now, "hung up")

    def deadline(self) -> float | None:
        if self.answer is not None or self.briefing_heard_at is None:
            return None
        return self.briefing_heard_at + self.respond_within_s

    def tick(self, now: float) -> Answer | None:
        deadline = self.deadline()
        if deadline is not None and now >= deadline:
            return self._decide(Answer.NO_RESPONSE, now, f"no key or speech within {self.respond_within_s:.0f} s")
        return None

    def answered_elsewhere(self, answer: Answer, now: float) -> Answer | None:
        """The person's leg reached another instance, which judged their answer."""
        return self._decide(answer, now, "on the person's leg, run by another instance")

    def gave_up(self, now: float, why: str) -> Answer | None:
        """The leg never came (rang out on our side, or the briefing could not be made)."""
        return self._decide(Answer.NO_ANSWER if "ring" in why else Answer.FAILED, now, why)
