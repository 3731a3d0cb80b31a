"""The agent's tools while they run: which calls are out, and which are slow enough for the
hold tone.

The driver runs each tool (`RunTool`) and hands back its result; the core decides whether the
result is still wanted (not cancelled by the caller's interruption, the call not ending) and
when a tool has run long enough that the caller should hear the hold tone. Built-in call
control (end_call, transfer_call, send_dtmf) plays or waits for audio itself: no tone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from telephony.call.record import CallRecord, ToolRecord
from telephony.gemini.events import ToolCall

MAX_TOOL_RECORDS = 500
"""Tool calls kept in a call's record (the transcript keeps a line for every one)."""


class ToolsInFlight:
    def __init__(self, hold_after_s: float, without_hold: frozenset[str]) -> None:
        self._hold_after_s = hold_after_s
        self._without_hold = without_hold
        self.running: set[str] = set()
        """Call ids sent to the driver and not yet answered or cancelled."""
        self._hold_due: dict[str, float] = {}
        """Running tools and when their hold tone starts if they still run."""
        self._holding_for: set[str] = set()
        """Running tools the hold tone is playing for."""

    def started(self, call: ToolCall, now: float) -> None:
        self.running.add(call.id)
        if self._hold_after_s > 0 and call.name not in self._without_hold:
            self._hold_due[call.id] = now + self._hold_after_s

    def answered(self, call_id: str) -> tuple[bool, bool]:
        """A result came back: (was it still wanted, must one hold reason end)."""
        stop_hold = self.over(call_id)
        wanted = call_id in self.running
        self.running.discard(call_id)
        return wanted, stop_hold

    def cancelled(self, ids: Iterable[str]) -> int:
        """The model cancelled these calls; returns how many hold reasons end."""
        self.running.difference_update(ids)
        return sum(self.over(call_id) for call_id in ids)

    def over(self, call_id: str) -> bool:
        """A tool ended (result, cancellation): True if its hold tone had started."""
        self._hold_due.pop(call_id, None)
        if call_id in self._holding_for:
            self._holding_for.discard(call_id)
            return True
        return False

    def now_slow(self, now: float) -> int:
        """Tools that have just run for `hold_after_s`: each is one more reason to hold."""
        due = [call_id for call_id, at in self._hold_due.items() if now >= at]
        for call_id in due:
            del self._hold_due[call_id]
            self._holding_for.add(call_id)
        return len(due)

    def deadline(self) -> float | None:
        return min(self._hold_due.values()) if self._hold_due else None

    def cancel_all(self) -> tuple[str, ...]:
        """The call is ending: every running call id, to cancel; nothing is due any more."""
        ids = tuple(sorted(self.running))
        self.running.clear()
        self._hold_due.clear()
        self._holding_for.clear()
        return ids


def write_down(record: CallRecord, call: ToolCall, response: dict[str, Any], duration_ms: float | None) -> None:
    """A tool's call and result, in the record and the transcript."""
    if len(record.tool_calls) < MAX_TOOL_RECORDS:
        error = response.get("error")
        duration = None if duration_ms is None else round(duration_ms, 1)
        record.tool_calls.append(
            ToolRecord(call.name, dict(call.args), response, record.elapsed_ms(), duration, str(error) if error else None)
        )
    arguments = ", ".join(f"{k}={v!r}" for k, v in call.args.items())
    record.say("tool", f"{call.name}({arguments}) -> {json.dumps(response, default=str)[:300]}")
    record.end_turn()
