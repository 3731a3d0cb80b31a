"""`with Conversation(...) as call:` in a plain sync test: the conversation's event loop runs
in a thread of its own and each call blocks until it is done."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from telephony.call.record import CallRecord
    from telephony.testing.agent_turn import AgentTurn

T = TypeVar("T")


class SyncConversation:
    """`with Conversation(...) as call:` in a sync test: the same calls, blocking."""

    def __init__(self, conversation: Any, thread: _LoopThread) -> None:
        self._conversation = conversation
        self._thread = thread

    def caller(self, text: str) -> AgentTurn:
        return self._thread.run(self._conversation.caller(text))

    def hang_up(self) -> CallRecord | None:
        return self._thread.run(self._conversation.hang_up())

    def stay_silent(self, seconds: float) -> None:
        self._thread.run(self._conversation.stay_silent(seconds))

    def expect_said(self, *criteria: str, turn: AgentTurn | None = None) -> None:
        self._thread.run(self._conversation.expect_said(*criteria, turn=turn))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conversation, name)


class _LoopThread:
    """An event loop in a thread of its own, for sync callers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="conversation", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()
