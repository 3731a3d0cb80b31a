"""`telephony talk`: a terminal console where you type what the caller says and watch your
agent answer, as it happens: its words, its tool calls with arguments and results, the
caller's interruptions and how long each reply took to start.

Each line you type is spoken down the phone line (`Conversation`), so what you see is what a
caller would get. Against the real model it is the quickest way to try a prompt; offline the
emulated model follows a model script (`--script`) or, without one, says back what it heard,
which shows the wiring.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import Any

from telephony.testing.conversation import Conversation
from telephony.testing.model_script import ModelScript, ModelStep, ScriptedModel
from telephony.testing.scripted_model import CallerTurn, Reply

QUIT = {"/quit", "/exit", "/hangup", "/bye"}
HELP = "Type what the caller says; Enter sends it. /hangup (or Ctrl-D) ends the call."


class SaysBackModel(ScriptedModel):
    """Offline without a script: the emulated model says back the words it heard."""

    def reply(self, turn: CallerTurn) -> Reply | None:
        if turn.audio16k is not None and self.turns_heard < len(self.lines) and self.turns_heard >= len(self.steps):
            self.steps.append(ModelStep(say=f"I heard: {self.lines[self.turns_heard]}"))
        return super().reply(turn)


class TalkView:
    """Prints what the call's record gains, line by line, once each line is complete."""

    def __init__(self, call: Conversation, show: Callable[[str], None]) -> None:
        self.call, self.show = call, show
        self.printed = 0

    def catch_up(self, final: bool = False) -> None:
        with contextlib.suppress(AssertionError):
            lines = self.call.current_record.transcript
            # The last line may still be growing (words stream in); it is printed when the
            # next one starts or the turn is over.
            for line in lines[self.printed : len(lines) if final else len(lines) - 1]:
                self.printed += 1
                text = line.text.strip()
                if line.speaker == "caller":
                    if self.call.real:  # what the model understood of your words
                        self.show(f"  [dim](heard: {text})[/dim]")
                    continue
                cut = " [yellow](interrupted)[/yellow]" if line.interrupted else ""
                style = {"agent": "bold cyan", "tool": "magenta", "system": "dim", "keypad": "green"}.get(line.speaker, "white")
                self.show(f"[{style}]{line.speaker}:[/{style}] {text}{cut}")

    async def follow(self) -> None:
        while True:
            self.catch_up()
            await asyncio.sleep(0.05)


async def talk(agent: Any, *, real: bool, script: ModelScript | None, show: Callable[[str], None], speed: float = 4.0) -> int:
    """The console's loop: returns the process's exit code."""
    steps, opening = (script.steps, script.opening) if script is not None else ((), None)
    call = Conversation(agent, steps, opening=opening, real=real, speed=speed, direction="console")
    if not real and script is None:
        call.model = SaysBackModel((), None)
    show(f"[dim]{HELP}[/dim]")
    async with call:
        view = TalkView(call, show)
        follower = asyncio.create_task(view.follow())
        try:
            while not call.ended:
                text = await asyncio.to_thread(_read_line)
                if text is None or text.strip().lower() in QUIT:
                    break
                if not text.strip():
                    continue
                turn = await call.caller(text.strip())
                view.catch_up(final=True)
                took = "no reply" if turn.response_ms is None else f"first word after {turn.response_ms:.0f} ms"
                show(f"  [dim]({took}{', ' + str(len(turn.tool_calls)) + ' tool call(s)' if turn.tool_calls else ''})[/dim]")
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        record = await call.hang_up()
        view.catch_up(final=True)
    reason = record.end_reason if record is not None else ""
    show(f"[dim]call ended: {reason or 'hung up'}[/dim]")
    return 0


def _read_line() -> str | None:
    try:
        return input("caller> " if sys.stdin.isatty() else "")
    except EOFError:
        return None
