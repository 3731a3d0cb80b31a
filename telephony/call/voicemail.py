"""Answering machines on outbound calls: the agent stops talking to the greeting, waits for the
beep, leaves its message, and hangs up once the message has been played.

Twilio's asynchronous answering-machine detection (`telephony dial` asks for it, with the
end-of-message option) reports `AnsweredBy` while the call runs, so the agent is ready at once
for a human and nobody hears seconds of silence. `human` changes nothing.
`machine_end_beep` / `machine_end_silence`: the greeting is over, the message goes now.
`machine_end_other` or `machine_start`: the end is unsure, so our own beep detector listens to
the line (`audio/beep.py`) for up to `beep_wait_s`, then the message goes anyway. `fax`, or a
machine with voicemail off: the call ends at once. From the moment a machine is known, the
agent is cut off and the machine's audio no longer reaches the model.

Twilio may also say `unknown`, or nothing at all: so an outbound call listens for a beep from
its start until a person is known. A beep that ends is a machine ready to record (people do
not beep), and the message goes after it, as for `machine_end_beep`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from telephony.audio.beep import BeepDetector
from telephony.call.parts import CallParts
from telephony.call.silence import SilenceRules
from telephony.call.state import CallState
from telephony.call.voicemail_rules import VoicemailState
from telephony.gemini.messages import RealtimeText

MACHINE_HEARD_END = frozenset({"machine_end_beep", "machine_end_silence"})
MACHINE_UNSURE = frozenset({"machine_end_other", "machine_start"})


class VoicemailSide(CallParts):
    if TYPE_CHECKING:
        voicemail: VoicemailState

        def _barge_in(self, source: str) -> None: ...
        def _end_now(self, outcome: str, reason: str, code: int) -> None: ...

    def answered_by(self, kind: str, now: float) -> None:
        """Twilio's answering-machine detection result for this call (`AnsweredBy`)."""
        self._at(now)
        self.record.answered_by = kind
        if self.state is not CallState.ACTIVE and self.state is not CallState.CONNECTING or self.voicemail.phase != "listening":
            return
        self.log.info("answered by %s", kind, extra={"answered_by": kind})
        if kind == "fax":
            self._end_now("fax", "a fax machine answered", 1000)
            return
        if kind == "human":
            self.voicemail.detector = None  # a person: no more listening for a beep
        if not (kind.startswith("machine") and (kind in MACHINE_HEARD_END or kind in MACHINE_UNSURE)):
            return  # a human (or unknown: the beep detector still listens): the call goes on as it is
        self._machine(kind, now)

    def _listen_for_beep(self) -> None:
        """An outbound call: until Twilio says a person answered, a beep means a machine."""
        self.voicemail.detector = BeepDetector()

    def _machine(self, kind: str, now: float) -> None:
        if self.voicemail.rules.off:
            self._end_now("machine", "an answering machine answered (voicemail is off)", 1000)
            return
        self.silence.rules = SilenceRules(reprompt_s=0)  # no "are you still there?" to a machine
        if self.playout.agent_audible or self.turn.open:
            self._barge_in("machine")  # the agent was talking to the greeting: cut off
        if kind in MACHINE_HEARD_END:
            self._leave_voicemail(now)
        else:
            self.voicemail.phase, self.voicemail.until = "waiting_beep", now + self.voicemail.rules.beep_wait_s
            self.voicemail.detector = BeepDetector()

    def _voicemail_frame(self, pcm8k: bytes, now: float) -> None:
        """A caller frame while we wait for the machine's beep."""
        detector = self.voicemail.detector
        if detector is None or not detector.feed(np.frombuffer(pcm8k, dtype="<i2")):
            return
        self.log.info("answering machine beep heard")
        if self.voicemail.phase == "listening":  # before (or without) Twilio's word: the beep says it
            self.record.answered_by = self.record.answered_by or "machine_beep_heard"
            if self.state is CallState.ACTIVE:
                self._machine("machine_end_beep", now)
        elif self.voicemail.phase == "waiting_beep":
            self._leave_voicemail(now)

    def _leave_voicemail(self, now: float) -> None:
        """The machine records: the message is asked for once the line has settled."""
        state = self.voicemail
        state.phase, state.until, state.detector = "settling", now + state.rules.settle_s, None

    def _ask_for_message(self, now: float) -> None:
        state = self.voicemail
        state.phase, state.until = "leaving", now + state.rules.leave_max_s
        self.record.say("system", "answering machine: leaving a voicemail")
        self.record.end_turn()
        self._gemini(RealtimeText(state.rules.nudge()))

    def _voicemail_tick(self, now: float) -> None:
        state = self.voicemail
        if state.until is None or now < state.until:
            return
        if state.phase == "waiting_beep":
            self._leave_voicemail(now)  # no beep heard: leave it anyway
        elif state.phase == "settling":
            self._ask_for_message(now)
        elif state.phase == "leaving":
            self._voicemail_over("the voicemail message took too long")

    def _voicemail_heard(self) -> None:
        """The agent's message has been played to the machine: hang up."""
        if self.voicemail.phase == "leaving" and self.voicemail.spoke:
            self._voicemail_over("voicemail left")

    def _voicemail_over(self, reason: str) -> None:
        self.voicemail.phase, self.voicemail.until = "done", None
        self.record.voicemail_left = self.voicemail.spoke
        self._end_now("voicemail", reason, 1000)
