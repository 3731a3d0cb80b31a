"""Conversation tests against the real Gemini Live model: the switch, the credentials, and
how a test knows the model has finished replying.

`TELEPHONY_TEST_REAL_GEMINI=1 pytest` runs every `Conversation` (and `telephony eval` without
`--emulate-gemini` runs every scenario) against Gemini Live with the agent's real
configuration: the scripted model steps are ignored, tool-call assertions stay exact, and
`expect_said` criteria are judged by a Gemini text model (`telephony.testing.judge`).

The emulated model tells a test when its reply is done; the real one does not. A reply counts
as finished when the agent did something (spoke or called a tool) and then nothing happened
for a while with nothing in flight: no turn open, nothing left to play, no tool running. After
a tool result the model often waits before it speaks (0.5 s to several seconds), so the wait is
longer then.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from telephony.call.record import CallRecord

REAL_GEMINI_ENV = "TELEPHONY_TEST_REAL_GEMINI"
SETTLE_S = 1.5
"""Quiet after the agent's words before its reply counts as finished (call seconds)."""
SETTLE_AFTER_TOOL_S = 6.0
"""Quiet after a tool result with no words since, before the reply counts as finished."""
NO_REPLY_S = 12.0
"""After the caller's line, how long a model that does nothing at all is given."""


class RealModelUnavailable(RuntimeError):
    """A real-model run was asked for without credentials (one line)."""


def real_gemini_requested() -> bool:
    return os.environ.get(REAL_GEMINI_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def real_settings(overrides: dict[str, Any]) -> Any:
    """The server's settings for a real-model call: the Gemini credentials and model from the
    environment (and `.env`), as `telephony serve` reads them; the rest from `overrides`."""
    from telephony.settings import Settings

    settings = Settings(**overrides)
    if settings.gemini_api_key is None and not settings.vertex_project:
        raise RealModelUnavailable(
            "a real-model run needs Gemini credentials: set GEMINI_API_KEY (or TELEPHONY_VERTEX_PROJECT), "
            f"or unset {REAL_GEMINI_ENV} to run offline"
        )
    return settings


def agent_acted(record: CallRecord, lines_before: int, tools_before: int) -> tuple[bool, bool]:
    """(the agent spoke or called a tool since, its last act was a tool result with no words after it)"""
    spoken = [line for line in record.transcript[lines_before:] if line.speaker == "agent" and line.text.strip()]
    tools = record.tool_calls[tools_before:]
    if not tools:
        return bool(spoken), False
    last_tool_ms = max(tool.at_ms + (tool.duration_ms or 0) for tool in tools)
    return True, not any(line.at_ms >= last_tool_ms for line in spoken)


def reply_settled(acted: bool, after_tool: bool, quiet_for_s: float, since_line_s: float) -> bool:
    """Whether the reply to the caller's line is finished (see the module's docstring)."""
    if not acted:
        return since_line_s >= NO_REPLY_S
    return quiet_for_s >= (SETTLE_AFTER_TOOL_S if after_tool else SETTLE_S)
