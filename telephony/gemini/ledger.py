"""What a Gemini session owes and is owed across connections: the supervisor's bookkeeping
as a plain object, so that every case has an instant test (tests/test_gemini_ledger.py).

- Messages sent since the last resumable handle may not have been consumed: on a resumed
  connection they go again, in order (only those after `lastConsumedClientMessageIndex`
  where the server says, as Vertex AI's transparent resumption does). Caller audio is not
  kept: a moment of it is worth less than a duplicate.
- Tool calls not yet answered make handles not resumable (the service marks them so).
- A fresh session knows nothing of the old one's calls: their results become orphans, told
  to the model as text instead of a `toolResponse` it would refuse.
- A goAway is acted on when nothing is being said or awaited and a resumable handle covers
  everything, or at the deadline.
"""

from __future__ import annotations

import json
from collections import deque

from telephony.gemini.messages import CallerAudio, GeminiMessage, RealtimeText, ToolResult

ORPHANED_RESULT_TEXT = "(The result of your earlier {name} request, which was interrupted by a reconnection: {result})"


class ResumptionLedger:
    def __init__(self) -> None:
        self._sent_index = 0
        self._unconfirmed: deque[tuple[int, GeminiMessage]] = deque()
        self.unanswered: set[str] = set()
        """Tool calls the model made on this conversation that have no result yet."""
        self.orphaned: set[str] = set()
        """Tool calls of a lost conversation: their results go as text."""
        self.resumable_now = False
        """The latest handle covers everything (no call unanswered since it came)."""

    # --- what happened on the connection --------------------------------------------------

    def on_the_wire(self, message: GeminiMessage) -> GeminiMessage:
        """What to put on the wire for a queued message: an orphan's result becomes text."""
        if isinstance(message, ToolResult) and message.call_id in self.orphaned:
            result = json.dumps(message.response, default=str)[:2000]
            return RealtimeText(ORPHANED_RESULT_TEXT.format(name=message.name, result=result))
        return message

    def sent(self, queued: GeminiMessage, on_wire: GeminiMessage) -> None:
        """`on_wire` (for `queued`) went out on the current connection."""
        if on_wire is not queued and isinstance(queued, ToolResult):
            self.orphaned.discard(queued.call_id)
        self._sent_index += 1
        if not isinstance(on_wire, CallerAudio):
            self._unconfirmed.append((self._sent_index, on_wire))
        if isinstance(on_wire, ToolResult):
            self.unanswered.discard(on_wire.call_id)

    def tool_called(self, call_id: str) -> None:
        self.unanswered.add(call_id)
        self.resumable_now = False

    def handle(self, last_consumed: int | None) -> None:
        """A resumable handle arrived: it covers what the server had consumed when it made it."""
        if last_consumed is None:
            self._unconfirmed.clear()
        else:
            while self._unconfirmed and self._unconfirmed[0][0] <= last_consumed:
                self._unconfirmed.popleft()
        self.resumable_now = not self.unanswered

    # --- a new connection -----------------------------------------------------------------

    def resumed(self) -> list[GeminiMessage]:
        """The session resumed on a new connection: what to send again first, in order."""
        again = [message for _, message in self._unconfirmed]
        self._reset()
        return again

    def fresh(self) -> None:
        """A fresh session replaced the lost one: its unanswered calls become orphans."""
        self.orphaned |= self.unanswered
        self.unanswered.clear()
        self._reset()

    def _reset(self) -> None:
        self._unconfirmed.clear()
        self._sent_index = 0

    # --- goAway -----------------------------------------------------------------------------

    def may_switch(self, agent_speaking: bool) -> bool:
        """After a goAway: switch now? Only between sentences, with every call answered and
        covered by a resumable handle (else wait, at most until the deadline)."""
        return not agent_speaking and self.resumable_now and not self.unanswered
