"""The call core's side that tools talk to: a tool's result, audio it plays, the hold tone
for a slow one, waiters for what was heard (a goodbye), and digits typed on the keypad for it.
Part of `core.Call` (see `parts.CallParts`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telephony.call.actions import Settle
from telephony.call.goodbye import GoodbyeWatch
from telephony.call.keypad import KeypadResult, KeypadRules
from telephony.call.parts import CallParts
from telephony.call.playout import Source
from telephony.call.state import CallState
from telephony.call.tools import write_down
from telephony.gemini import tool_results
from telephony.gemini.events import ToolCall
from telephony.gemini.messages import ToolResult
from telephony.gemini.models import Scheduling


class ToolSide(CallParts):
    if TYPE_CHECKING:  # what this side uses beyond the shared parts (`parts.CallParts`)
        _goodbye: GoodbyeWatch | None

        def _add_hold(self) -> None: ...
        def _check_goodbye(self, now: float) -> None: ...

    def tool_finished(
        self,
        call: ToolCall,
        response: dict[str, Any],
        now: float,
        duration_ms: float | None = None,
        scheduling: Scheduling | None = None,
    ) -> bool:
        """A tool's result. Returns False when it is no longer wanted (cancelled, call over),
        in which case nothing is sent and whatever the tool meant to do next must not run.
        The model gets it with `status`, `retryable` and a message (`tool_results`)."""
        self._at(now)
        wanted, stop_hold = self.tools.answered(call.id)
        if stop_hold:
            self.hold.drop()
        if not wanted:
            return False
        self.stall.tools_running(bool(self.tools.running))
        self.silence.reply_due()
        if self.state in (CallState.ENDING, CallState.ENDED):
            return False
        self._gemini(ToolResult(call.id, call.name, tool_results.for_model(response), scheduling))
        write_down(self.record, call, response, duration_ms)
        return True

    def play_audio(self, mulaw: bytes, token: int, now: float) -> None:
        """Our own mu-law 8 kHz audio (keypad tones), then settle `token` once it was heard."""
        self._at(now)
        if self.state is CallState.ENDED:
            self._actions.append(Settle(token, False))
            return
        self.playout.hold(mulaw, Source.PROMPT)
        self.wait_heard(token, now)

    def start_hold(self, now: float) -> None:
        """A tool is slow: the caller hears the hold tone until `stop_hold` (or they speak),
        but only into silence: while the agent talks (a NON_BLOCKING tool) the tone waits."""
        self._at(now)
        self._add_hold()

    def stop_hold(self, now: float) -> None:
        self._at(now)
        self.hold.drop()

    def wait_heard(self, token: int, now: float) -> None:
        """Settle `token` once everything sent or held so far has been played."""
        self._at(now)
        if self.state is CallState.ENDED:
            self._actions.append(Settle(token, False))
            return
        self.playout.hold_marker(token)
        self._release()

    def watch_goodbye(self, token: int, now: float, grace_s: float | None = None) -> None:
        """Settle `token` (ok) once the agent's goodbye has been heard: its turn is complete
        and played, or nothing more was said within `grace_s`. Settled not ok if the caller
        talks over it first."""
        self._at(now)
        if self.state is CallState.ENDED:
            self._actions.append(Settle(token, False))
            return
        self._goodbye = GoodbyeWatch(token, now, self.config.goodbye_grace_s if grace_s is None else grace_s, self.config.goodbye_max_s)
        self._check_goodbye(now)

    def forget(self, token: int) -> None:
        """The driver stopped waiting for `token` (its tool was cancelled)."""
        if self._goodbye is not None and self._goodbye.token == token:
            self._goodbye = None

    def expect_keypad(self, grace_s: float, now: float) -> None:
        """The agent has tools that take keypad digits: hold key presses `grace_s` for them,
        and mute keypad tones toward Gemini and the recording (`telephony.call.keypad`)."""
        self._at(now)
        self.keypad.grace_s = grace_s
        self.caller.mute_keypad_tones()

    def collect_keypad(self, token: int, rules: KeypadRules, now: float) -> None:
        """A tool asks for digits: a `KeypadResult` for `token` follows (the digits, or why not)."""
        self._at(now)
        if self.state in (CallState.ENDING, CallState.ENDED):
            self._actions.append(KeypadResult(token, None, "the call is ending"))
            return
        self.log.info("collecting %s on the keypad", rules.label, extra={"keypad": "collecting"})
        if (done := self.keypad.start(token, rules, now)) is not None:
            self._keypad_done(done)

    def _keypad_done(self, result: KeypadResult) -> None:
        self.log.info("keypad entry %s", "complete" if result.digits else result.problem, extra={"keypad": "done"})
        self._actions.append(result)
