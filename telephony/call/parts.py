"""What the two sides of the call core work on, declared once for type checkers.

`core.Call` is its Twilio side (`caller_side.CallerSide`) and its Gemini side
(`agent_side.AgentSide`) over the same parts, which `Call.__init__` creates: the record, the
caller's audio path and turn, what goes out to the caller, the agent's turn, running tools,
the hold tone, the stall and silence watches. Each side declares here what it uses of the others.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from telephony.call.actions import Action
    from telephony.call.caller_audio import CallerAudioPath
    from telephony.call.hold import HoldTone
    from telephony.call.keypad import KeypadCollector
    from telephony.call.playout import Playout
    from telephony.call.record import CallRecord
    from telephony.call.rules import CallConfig
    from telephony.call.silence import SilenceWatch
    from telephony.call.stall import StallWatch
    from telephony.call.state import CallState
    from telephony.call.tally import Tally
    from telephony.call.tools import ToolsInFlight
    from telephony.call.turn import AgentTurn, CallerTurn
    from telephony.call.twilio_out import TwilioOut
    from telephony.call.voicemail_rules import VoicemailState
    from telephony.gemini.messages import GeminiMessage


class CallParts:
    if TYPE_CHECKING:
        config: CallConfig
        log: logging.Logger | logging.LoggerAdapter[Any]
        tally: Tally
        record: CallRecord
        state: CallState
        caller: CallerAudioPath
        caller_turn: CallerTurn
        out: TwilioOut
        playout: Playout
        turn: AgentTurn
        tools: ToolsInFlight
        hold: HoldTone
        stall: StallWatch
        silence: SilenceWatch
        keypad: KeypadCollector
        voicemail: VoicemailState
        _actions: list[Action]
        _started_at: float

        def _at(self, now: float) -> None: ...
        def _move(self, new: CallState) -> None: ...
        def _gemini(self, message: GeminiMessage) -> None: ...
        def _release(self) -> None: ...
        def _after_playout_change(self, now: float) -> None: ...
        def _finish_with_prompt(self, outcome: str, reason: str, prompt: str, now: float) -> None: ...
