"""Nothing of a call outlives it: its objects go when it ends, by reference counting alone.

A reference cycle through a call (a part holding a bound method of the call, a callback
closing over its driver) keeps the whole call (sessions, sockets, buffers) until Python's
cyclic collector runs a full collection, which on a server with a large heap can be minutes:
a soak held 30 calls' worth at idle and RSS grew without levelling off.
"""

from __future__ import annotations

import asyncio
import gc

import httpx
import pytest

from telephony import Agent, live_objects
from telephony.testing.gemini_live import EmulatedToolCall, Faults, GeminiLiveEmulator, Reply, ScriptedAgent, tone24k

from conftest import offline_stack, until_served


def _with_a_tool() -> tuple[ScriptedAgent, Agent]:
    agent = Agent("desk")

    @agent.tool
    def opening_hours(day: str) -> str:
        """Opening hours on a day."""
        return "nine to five"

    model = ScriptedAgent(
        [Reply(audio24k=tone24k(0.5), transcript="Nine.", tool_calls=(EmulatedToolCall("opening_hours", {"day": "mon"}),))] * 3
    )
    return model, agent


@pytest.mark.parametrize("kind", ["plain", "tool and reconnect"])
async def test_a_finished_calls_objects_are_freed_without_the_cyclic_collector(kind):
    model, agent = _with_a_tool() if kind != "plain" else (None, None)
    faults = Faults(close_after_s=1.5, close_code=1011) if kind != "plain" else Faults()
    emulator = GeminiLiveEmulator(model, speed=4.0, faults=faults) if model is not None else GeminiLiveEmulator(speed=4.0)
    async with emulator as gemini, offline_stack(gemini, agent=agent) as stack:
        await stack.replay("one_sentence")  # the first call loads what every call shares
        gc.collect()
        gc.disable()
        try:
            result = await stack.replay("barge_in")
            for _ in range(50):
                if not any(live_objects.counts().values()):
                    break
                await asyncio.sleep(0.02)
            alive = {kind: n for kind, n in live_objects.counts().items() if n}
        finally:
            gc.enable()
        assert result.heard_seconds > 0.5
        if kind != "plain":
            assert len(gemini.connections) >= 3 and any(c.tool_responses for c in gemini.connections), "a reconnect and a tool ran"
        assert alive == {}, f"still alive after the call, held by a reference cycle: {alive}"


async def test_the_metrics_page_during_a_call_counts_its_objects_in_plain_name_value_lines(stack):
    """CI scraped /metrics while a google.genai session of an earlier test was alive: its kind
    had a space in it, and a `name value` reader (the test's, awk, many scrapers' regexes) broke."""
    call = asyncio.create_task(stack.replay("barge_in"))
    # Until the call's Gemini session is connected: the driver is counted from the stream's
    # start, the SDK's session only once its connect returns (a slow machine scraped between).
    await until_served(stack.base_url, call, "/metrics", lambda r: 'kind="google.genai.AsyncSession"} 1' in r.text)
    async with httpx.AsyncClient() as client:
        text = (await client.get(stack.base_url + "/metrics")).text
    await call
    samples = [line.split(" ") for line in text.splitlines() if line and not line.startswith("#")]
    assert all(len(fields) == 2 for fields in samples), [" ".join(f) for f in samples if len(f) != 2]
    live = {name: float(value) for name, value in samples if name.startswith("telephony_live_objects")}
    for kind in ("CallDriver", "GeminiLiveSession", "google.genai.AsyncSession", "starlette.WebSocket"):
        assert live.get(f'telephony_live_objects{{kind="{kind}"}}', 0) >= 1, (kind, live)
