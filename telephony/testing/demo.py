"""What `telephony demo` puts on the line: an agent with one tool, and an emulated model that
uses it, so the demo shows a whole call - a question, a tool call, an answer, a barge-in."""

from __future__ import annotations

from telephony import Agent
from telephony.testing.gemini_live import CallerTurn, EchoAgent, EmulatedToolCall, Reply

demo_agent = Agent(
    "demo",
    instructions="You are a shop's phone assistant. Answer questions about opening hours.",
    tool_timeout_s=5,
)


@demo_agent.tool
def opening_hours(day: str) -> dict[str, str]:
    """The shop's opening hours on a day of the week, or on the weekend.

    Args:
        day: A day of the week, or "weekend".
    """
    hours = {"saturday": "10:00-16:00", "sunday": "closed", "weekend": "Saturday 10:00-16:00, closed on Sunday"}
    return {"day": day, "hours": hours.get(day.lower(), "09:00-18:00")}


class DemoModel:
    """Echoes what the caller said (the classic telephony test) and, on the first question,
    looks the opening hours up first, as a model would with the tool above."""

    def __init__(self) -> None:
        self._echo = EchoAgent()

    def reply(self, turn: CallerTurn) -> Reply | None:
        echo = self._echo.reply(turn)
        if echo is None or turn.index > 0:
            return echo
        return Reply(
            audio24k=echo.audio24k, transcript=echo.transcript, tool_calls=(EmulatedToolCall("opening_hours", {"day": "weekend"}),)
        )
