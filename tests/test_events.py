"""Events to the user's systems: call.started and call.ended as signed POSTs, kept in the store
and retried until the receiver takes them (an outage of the receiver, a restart of ours), each
once-keyed; the same events to the agent's callbacks in code."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

from fastapi import FastAPI, Request, Response

from telephony import Agent, create_app
from telephony.settings import Settings
from telephony.store import CallStore
from telephony.store.outbox import EventOutbox
from telephony.testing import Conversation, ModelStep
from telephony.web.server import running_server

from helpers.agents import shop_agent

SECRET = "events-secret"


class Receiver:
    """The user's system: verifies each event's signature; can be down."""

    def __init__(self) -> None:
        self.up = False
        self.received: list[dict] = []
        self.refused = 0
        self.bad_signatures = 0
        self.app = FastAPI()

        @self.app.post("/events")
        async def take(request: Request) -> Response:
            if not self.up:
                self.refused += 1
                return Response(status_code=503)
            body = await request.body()
            timestamp = request.headers["x-telephony-timestamp"]
            expected = "sha256=" + hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, request.headers["x-telephony-signature"]) or abs(time.time() - int(timestamp)) > 300:
                self.bad_signatures += 1
                return Response(status_code=401)
            event = json.loads(body)
            assert request.headers["idempotency-key"] == event["id"]
            self.received.append(event)
            return Response(status_code=204)


def shop_agent_remembering(calls_ended: list[dict]) -> Agent:
    agent = shop_agent()

    @agent.on_call_ended
    async def remember(event: dict) -> None:
        calls_ended.append(event)

    return agent


async def until(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "waited too long"
        await asyncio.sleep(0.05)


async def test_a_receiver_that_was_down_gets_every_event_once_it_is_back_with_valid_signatures(tmp_path):
    receiver = Receiver()
    in_code: list[dict] = []
    async with running_server(receiver.app) as receiver_url:
        model = [ModelStep(tool="order_status", args={"order": 42}, say="It has shipped.")]
        settings = {"events_url": f"{receiver_url}/events", "events_secret": SECRET, "database_url": f"sqlite:///{tmp_path / 'h.db'}"}
        async with Conversation(shop_agent_remembering(in_code), model, **settings) as call:
            await call.caller("Where is order forty-two?")
            record = await call.hang_up()
            await until(lambda: receiver.refused >= 2)  # both events tried while the receiver is down
            receiver.up = True
            await until(lambda: len(receiver.received) >= 2)
    assert receiver.bad_signatures == 0
    started, ended = sorted(receiver.received, key=lambda e: e["type"] != "call.started")
    assert started["type"] == "call.started" and ended["type"] == "call.ended" and started["id"] != ended["id"]
    data = ended["data"]
    assert record is not None and data["call_sid"] == record.call_sid and data["outcome"] == "completed"
    assert data["tool_calls"][0]["name"] == "order_status" and data["tool_calls"][0]["response"]["state"] == "shipped"
    assert any(line["speaker"] == "agent" and "shipped" in line["text"] for line in data["transcript"])
    assert data["duration_s"] > 0 and data["from"] and data["to"]
    assert [e["data"]["call_sid"] for e in in_code] == [record.call_sid], "the agent's callback got the same event"
    assert in_code[0]["id"] == ended["id"]


async def test_events_left_undelivered_by_a_stopped_server_go_out_when_it_starts_again(tmp_path):
    receiver = Receiver()
    history = f"sqlite:///{tmp_path / 'h.db'}"
    outbox = EventOutbox(CallStore(history))
    async with running_server(receiver.app) as receiver_url:
        await outbox.add("evt_left_behind", "call.ended", f"{receiver_url}/events", json.dumps({"id": "evt_left_behind"}), time.time())
        receiver.up = True
        settings = Settings(
            _env_file=None,
            gemini_api_key="unused",
            validate_signatures=False,
            database_url=history,
            events_url=f"{receiver_url}/events",
            events_secret=SECRET,
        )
        async with running_server(create_app(settings, agent=Agent("a"))):  # a restart: nothing but the store knows
            await until(lambda: receiver.received)
    assert [e["id"] for e in receiver.received] == ["evt_left_behind"]
    assert await outbox.pending() == 0
    await outbox.store.close()
