"""Agent tools that act on the phone call: hang up, transfer to a person, press keys.

They are declared to Gemini as functions; the call runs them when the model calls them and
answers with a tool response so the model knows what happened. REST failures are reported to
the model and logged; they never end the call by themselves.

- `end_call`: the tool is acknowledged at once so the model can say goodbye; once the caller
  has heard it (the model's next turn is complete and played, or it said nothing more within
  the grace time: native-audio models often start a goodbye a second or two after the tool
  response), the call is completed through the REST API and the stream closed. A caller who
  talks over the goodbye keeps the call.
- `transfer_call(to)`: after what the agent said has been heard, the live call is redirected
  with TwiML `<Dial>` to one of the configured numbers (never a number the model made up).
- `warm_transfer(to, summary)`: the caller waits on hold while the person hears a briefing
  and says yes or no; the caller is joined to them, or back with the agent
  (`telephony.agents.warm_transfer`).
- `send_dtmf(digits)`: in-band DTMF tones played into the call, for phone menus.

All three are declared BLOCKING (the model waits for what happened to the call), except on
3.8 Extended Thinking, which takes NON_BLOCKING tools only: there the goodbye or the
transfer announcement is waited for until the model's task is IDLE.
"""

from __future__ import annotations

import logging

from google.genai import types
from twilio.twiml.voice_response import VoiceResponse

from telephony.agents.agent import Tool
from telephony.agents.warm_transfer import TOOL_TIMEOUT_S, WarmTransfers
from telephony.agents.warm_transfer import declaration as warm_transfer_declaration
from telephony.audio.dtmf import VALID_DIGITS, dtmf_mulaw
from telephony.call.tool_api import CallHandle, CallTool, ToolHandler, ToolOutcome
from telephony.gemini.events import ToolCall
from telephony.twilio.rest import TwilioRest, TwilioRestError

log = logging.getLogger(__name__)

MAX_DTMF_DIGITS = 32

TRANSFER_QUIET_S = 0.4
"""Before a transfer: what the agent said is played and it has been quiet this long."""


class CallControl:
    def __init__(self, rest: TwilioRest | None, transfer_numbers: list[str], warm: WarmTransfers | None = None) -> None:
        self.rest = rest
        self.transfer_numbers = list(transfer_numbers)
        self.warm = warm

    def declarations(self) -> tuple[types.FunctionDeclaration, ...]:
        tools = [
            types.FunctionDeclaration(
                name="end_call",
                description="Hang up the phone call. Say goodbye first: the call ends once the caller has heard it.",
                behavior=types.Behavior.BLOCKING,
                parameters=types.Schema(
                    type=types.Type.OBJECT,
                    properties={"reason": types.Schema(type=types.Type.STRING, description="Why the call ends.")},
                ),
            ),
            types.FunctionDeclaration(
                name="send_dtmf",
                description="Press keys on the phone keypad (to navigate a phone menu). Digits 0-9, * and #.",
                behavior=types.Behavior.BLOCKING,
                parameters=types.Schema(
                    type=types.Type.OBJECT,
                    properties={"digits": types.Schema(type=types.Type.STRING, description="Keys to press, e.g. '1' or '1234#'.")},
                    required=["digits"],
                ),
            ),
        ]
        if self.rest is not None and self.transfer_numbers:
            tools.append(
                types.FunctionDeclaration(
                    name="transfer_call",
                    description="Transfer the caller straight to a person (cold: the person hears nothing first). Tell the caller first.",
                    behavior=types.Behavior.BLOCKING,
                    parameters=types.Schema(
                        type=types.Type.OBJECT,
                        properties={
                            "to": types.Schema(type=types.Type.STRING, enum=self.transfer_numbers, description="Number to transfer to.")
                        },
                        required=["to"],
                    ),
                )
            )
        if self.warm is not None and self.transfer_numbers:
            tools.append(warm_transfer_declaration(self.transfer_numbers))
        return tuple(tools)

    def tools(self, enabled: tuple[str, ...]) -> list[CallTool]:
        """The built-in tools an agent asked for, as tools like its own."""
        handlers = self.handlers()
        return [
            Tool(str(d.name), d, handlers[str(d.name)], TOOL_TIMEOUT_S if d.name == "warm_transfer" else None)
            for d in self.declarations()
            if d.name in enabled and d.name in handlers
        ]

    def handlers(self) -> dict[str, ToolHandler]:
        handlers: dict[str, ToolHandler] = {"end_call": self.end_call, "send_dtmf": self.send_dtmf}
        if self.rest is not None and self.transfer_numbers:
            handlers["transfer_call"] = self.transfer_call
        if self.warm is not None and self.transfer_numbers:
            handlers["warm_transfer"] = self.warm_transfer
        return handlers

    async def end_call(self, call: CallHandle, tool: ToolCall) -> ToolOutcome:
        async def hang_up() -> None:
            if not await call.wait_for_goodbye():
                call.log.info("the caller spoke over the goodbye: the call goes on")
                return
            call.log.info("agent ended the call", extra={"end_reason": tool.args.get("reason")})
            if self.rest is not None and call.call_sid:
                try:
                    await self.rest.hang_up(call.call_sid)
                except TwilioRestError as exc:
                    call.log.error("hang-up through the REST API failed, closing the stream: %s", exc)
            call.end_call("agent ended the call")

        return ToolOutcome({"result": "The call will end once the caller has heard your goodbye."}, then=hang_up)

    async def transfer_call(self, call: CallHandle, tool: ToolCall) -> ToolOutcome:
        to = str(tool.args.get("to") or (self.transfer_numbers[0] if len(self.transfer_numbers) == 1 else ""))
        if to not in self.transfer_numbers:
            return ToolOutcome({"error": f"transfers are only allowed to: {', '.join(self.transfer_numbers)}"})
        if self.rest is None or not call.call_sid:
            return ToolOutcome({"error": "transfers need Twilio credentials on the server"})
        if not await call.wait_for_goodbye(grace_s=TRANSFER_QUIET_S):
            return ToolOutcome({"error": "the caller started speaking, so the transfer was not made; ask if they still want it"})
        twiml = VoiceResponse()
        twiml.dial(to)
        call.moving_off(f"transferred to {to}")
        try:
            await self.rest.redirect(call.call_sid, str(twiml))
        except TwilioRestError as exc:
            call.moving_off(None)
            call.log.error("transfer to %s failed: %s", to, exc)
            return ToolOutcome({"error": f"the transfer failed: {exc}. Tell the caller and offer another way to help."})
        call.log.info("call transferred", extra={"to": to})
        return ToolOutcome({"result": f"transferred to {to}"})

    async def warm_transfer(self, call: CallHandle, tool: ToolCall) -> ToolOutcome:
        to = str(tool.args.get("to") or (self.transfer_numbers[0] if len(self.transfer_numbers) == 1 else ""))
        if to not in self.transfer_numbers:
            return ToolOutcome({"error": f"transfers are only allowed to: {', '.join(self.transfer_numbers)}"})
        assert self.warm is not None
        if not await call.wait_for_goodbye(grace_s=TRANSFER_QUIET_S):
            return ToolOutcome({"error": "the caller started speaking, so the transfer was not started; ask if they still want it"})
        return await self.warm.transfer(call, to, str(tool.args.get("summary") or ""))

    async def send_dtmf(self, call: CallHandle, tool: ToolCall) -> ToolOutcome:
        digits = str(tool.args.get("digits") or "").replace(" ", "").upper()
        if not digits or len(digits) > MAX_DTMF_DIGITS or set(digits) - VALID_DIGITS:
            return ToolOutcome({"error": f"digits must be 1-{MAX_DTMF_DIGITS} of 0-9, *, #, A-D"})
        heard = await call.play_audio(dtmf_mulaw(digits))
        return ToolOutcome({"result": f"pressed {digits}" if heard else f"sent {digits}, playback not confirmed"})
