"""Post-call analysis: after the call a text model (here the Gemini emulator's, answering as
the test says) writes a summary, a verdict and the agent's own fields; they are stored with the
call, shown on the dashboard and sent as call.analysis_ready."""

from __future__ import annotations

import json
import sqlite3

import httpx
from pydantic import BaseModel
from test_events import SECRET, Receiver, until

from telephony import Agent
from telephony.agents.analysis import Analysis
from telephony.agents.loading import load_agent
from telephony.testing import Conversation, ModelStep
from telephony.testing.text_model import prompt_text, response_schema
from telephony.web.server import running_server


class Booking(BaseModel):
    booked: bool
    day: str | None = None


class Analyst:
    """Answers the analysis request as a model would, and keeps what it was asked."""

    def __init__(self) -> None:
        self.asked: list[dict] = []

    def answer(self, model: str, request: dict) -> str:
        self.asked.append(request)
        said_friday = "friday" in prompt_text(request).lower()
        return json.dumps(
            {
                "summary": "The caller booked an appointment on Friday.",
                "success": said_friday,
                "success_reason": "an appointment was booked",
                "fields": {"booked": said_friday, "day": "friday" if said_friday else None},
            }
        )


async def test_a_call_is_analysed_after_it_ends_stored_shown_and_sent(tmp_path):
    agent = Agent("clinic", instructions="You book appointments.", analysis=Analysis(fields=Booking, success="an appointment was booked"))
    analyst, receiver = Analyst(), Receiver()
    receiver.up = True
    history = tmp_path / "h.db"
    async with running_server(receiver.app) as receiver_url:
        settings = {"events_url": f"{receiver_url}/events", "events_secret": SECRET, "database_url": f"sqlite:///{history}"}
        async with Conversation(agent, [ModelStep(say="Booked for Friday at nine.")], text_model=analyst, **settings) as call:
            await call.caller("I would like an appointment on Friday.")
            record = await call.hang_up()
            await until(lambda: any(e["type"] == "call.analysis_ready" for e in receiver.received))
            async with httpx.AsyncClient(base_url=str(call.server_settings.public_url)) as client:
                page = (await client.get(f"/calls/{record.call_sid}", headers={"accept": "text/html"})).text
    (ready,) = [e for e in receiver.received if e["type"] == "call.analysis_ready"]
    analysis = ready["data"]["analysis"]
    assert analysis["fields"] == {"booked": True, "day": "friday"} and analysis["success"] is True
    assert analysis["model"] == "gemini-3.6-flash"
    asked = analyst.asked[0]
    assert "AGENT:" not in prompt_text(asked) and "Booked for Friday at nine." in prompt_text(asked)
    assert response_schema(asked)["properties"]["fields"]["properties"].keys() == {"booked", "day"}
    assert "Analysis" in page and "The caller booked an appointment on Friday." in page and "success" in page
    await until(lambda: json.loads(sqlite3.connect(history).execute("SELECT summary FROM calls").fetchone()[0]).get("analysis"))


def test_an_agent_file_declares_its_analysis_fields_as_a_json_schema(tmp_path):
    toml = tmp_path / "agent.toml"
    toml.write_text(
        'name = "shop"\ninstructions = "You sell shoes."\n[analysis]\nsuccess = "an order was placed"\n'
        'fields = { type = "object", properties = { order_id = { type = "string" } } }\n'
    )
    agent = load_agent(str(toml))
    assert agent.analysis.success == "an order was placed"
    assert agent.analysis.fields_schema()["properties"] == {"order_id": {"type": "string"}}


async def test_an_analysis_kept_later_never_writes_over_what_else_the_call_keeps(tmp_path):
    from telephony.call.record import CallRecord
    from telephony.metrics import Metrics
    from telephony.store import CallStore, StoreWriter

    writer = StoreWriter(CallStore(f"sqlite:///{tmp_path / 'h.db'}"), Metrics())
    record = CallRecord(call_sid="CA" + "5" * 32, parameters={"agent": "clinic"})
    writer.put_call(record, "completed")
    writer.put_annotation(record.call_sid, "eval", {"passed": True})  # an eval run's verdict
    writer.put_annotation(record.call_sid, "analysis", {"summary": "Booked."})
    assert await writer.flush()
    stored = await writer.store.call(record.call_sid)
    await writer.close()
    assert stored["eval"] == {"passed": True} and stored["analysis"] == {"summary": "Booked."}
