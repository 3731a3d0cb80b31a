"""Several instances behind one load balancer, on one PostgreSQL: every call and status is
seen by each, a call has one stream and one Gemini session wherever its streams land, and what
Twilio tells us about a call reaches it on the instance that carries it."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
from test_call_history import flushed, get

from telephony import Agent
from telephony.store import CallStore
from telephony.store.signals import CallSignal, CallSignals
from telephony.testing.answering_machine import answering_machine
from telephony.testing.gemini_live import GeminiLiveEmulator
from telephony.testing.model_script import ScriptedModel
from telephony.testing.twilio_media import TwilioMediaEmulator
from telephony.twilio.media_streams import TOKEN_PARAMETER
from telephony.twilio.signatures import TwilioSignatures

from conftest import ACCOUNT_SID, AUTH_TOKEN, FIXTURES, offline_stack, until_a_call_is_live


async def test_two_instances_on_one_postgresql_see_every_call_and_status(postgres):
    async with GeminiLiveEmulator(speed=4.0) as gemini:
        async with offline_stack(gemini, database_url=postgres.url) as first, offline_stack(gemini, database_url=postgres.url) as second:
            result = await first.replay("hang_up")
            status = {"CallSid": result.call_sid, "CallStatus": "completed", "SequenceNumber": "3"}
            url = second.base_url + "/status"
            async with httpx.AsyncClient() as client:  # Twilio's callback reached the other instance
                await client.post(url, data=status, headers={"X-Twilio-Signature": TwilioSignatures(AUTH_TOKEN).sign(url, status)})
            await flushed(first)
            await flushed(second)
            on_second = (await get(second, f"/calls/{result.call_sid}", auth=(ACCOUNT_SID, AUTH_TOKEN))).json()
            on_first = (await get(first, f"/calls/{result.call_sid}")).json()
    assert on_second["finished"] and on_second["end_reason"] == "caller hung up", "the other instance's call"
    assert [s["CallStatus"] for s in on_first["statuses"]] == ["completed"], "the other instance's status callback"


async def test_two_instances_on_one_postgresql_open_one_gemini_session_per_call_wherever_its_streams_land(postgres, caplog):
    """Behind one load balancer: a captured stream start replayed 10 times, to both instances,
    opens one Gemini session; a second stream for the live call (a fresh token from a second
    webhook for the same CallSid) is refused on the other instance. The token is spent and the
    CallSid held in PostgreSQL, not in either process."""
    caplog.set_level(logging.INFO, logger="telephony")  # whatever an earlier test left
    async with (
        GeminiLiveEmulator(speed=4.0) as gemini,
        offline_stack(gemini, database_url=postgres.url) as first,
        offline_stack(gemini, database_url=postgres.url) as second,
    ):
        second.settings.public_url = first.settings.public_url  # one public address for both
        ws = {stack: stack.base_url.replace("http", "ws", 1) + "/media-stream" for stack in (first, second)}
        captured = await TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", speed=2.0, auth_token=AUTH_TOKEN).answer(first.webhook)
        replays = [
            TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", speed=2.0, auth_token=AUTH_TOKEN).play(
                captured, connect_url=ws[first if index % 2 else second]
            )
            for index in range(10)
        ]
        replayed = await asyncio.gather(*replays)
        sessions_for_the_replayed_call = len(gemini.connections)

        caller = TwilioMediaEmulator(FIXTURES / "one_sentence.jsonl", speed=2.0, auth_token=AUTH_TOKEN, call_sid="CA" + "7" * 32)
        answered = await caller.answer(first.webhook)
        live = asyncio.create_task(caller.play(answered, connect_url=ws[first]))
        await until_a_call_is_live(first, live)
        issued = int(answered.parameters[TOKEN_PARAMETER].split(".")[0], 16)
        while int(time.time()) <= issued:  # a token is per CallSid and second: the next one differs
            await asyncio.sleep(0.05)
        again = TwilioMediaEmulator(FIXTURES / "one_sentence.jsonl", speed=2.0, auth_token=AUTH_TOKEN, call_sid="CA" + "7" * 32)
        second_stream = await again.play(await again.answer(first.webhook), connect_url=ws[second])
        first_stream = await live
    assert sessions_for_the_replayed_call == 1, f"{sessions_for_the_replayed_call} Gemini sessions for one call"
    assert sorted(r.close_code for r in replayed) == [1000] + [1008] * 9
    assert second_stream.close_code == 1008 and second_stream.heard_seconds == 0, "the live call's second stream was refused"
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stream refused")]
    assert sum("token already used" in m for m in refusals) == 9 and sum("already live" in m for m in refusals) == 1, refusals
    assert first_stream.close_code == 1000 and first_stream.heard_seconds > 0.5
    assert len(gemini.connections) == 2, "the live call's one session, and none for its second stream"


async def test_twilios_answered_by_for_a_call_reaches_it_on_the_instance_that_carries_it(postgres):
    """The machine-detection callback lands on the instance that does not carry the call (the
    load balancer chooses): it is passed on through the store, and the call leaves its message."""
    agent = Agent("clinic", instructions="You remind patients of appointments.", voicemail_instructions="remind them of Friday")
    call_sid = "CA" + "8" * 32
    async with (
        GeminiLiveEmulator(ScriptedModel([]), speed=2.0) as gemini,
        offline_stack(gemini, agent=agent, database_url=postgres.url) as carrying,
        offline_stack(gemini, agent=agent, database_url=postgres.url) as other,
    ):
        other.settings.public_url = carrying.settings.public_url  # one public address for both
        machine = TwilioMediaEmulator(answering_machine(greeting_s=3.0), speed=2.0, auth_token=AUTH_TOKEN, call_sid=call_sid)
        call = asyncio.create_task(machine.call(carrying.webhook))
        while machine.call_time() < 5.0:
            await asyncio.sleep(0.02)
        amd = other.base_url + "/amd"
        form = {"CallSid": call_sid, "AnsweredBy": "machine_end_beep"}
        async with httpx.AsyncClient() as client:  # signed for the public address, as Twilio signs it
            signature = TwilioSignatures(AUTH_TOKEN).sign(carrying.settings.public_url + "/amd", form)
            posted = await client.post(amd, data=form, headers={"X-Twilio-Signature": signature})
        result = await asyncio.wait_for(call, 60)
        (record,) = carrying.records()
    assert posted.status_code == 204
    assert record.answered_by == "machine_end_beep" and record.voicemail_left and record.outcome == "voicemail"
    assert result.media_seconds(after_s=5.0) > 3.0, "the machine recorded the agent's whole message"


async def test_a_passed_on_callback_is_taken_once_by_one_process_on_a_sqlite_file(tmp_path):
    """Workers of one machine share a SQLite file: a signal goes to the first taker only, the
    others' calls are left theirs, and one nobody takes is swept after an hour."""
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    first, second = CallStore(url), CallStore(url)
    try:
        now = time.time()
        await CallSignals(first).send(CallSignal("CA1", "answered_by", "machine_end_beep"), now)
        await CallSignals(first).send(CallSignal("CA2", "status", "completed"), now)
        await CallSignals(first).send(CallSignal("CA3", "status", "ringing"), now - 4000)
        takers = [CallSignals(first), CallSignals(second)]
        taken = await asyncio.gather(*(taker.take(["CA1"], now) for taker in takers))
        left = await CallSignals(second).take(["CA2", "CA3"], now)
    finally:
        await first.close()
        await second.close()
    assert sorted(len(t) for t in taken) == [0, 1], "one taker"
    assert [s for t in taken for s in t] == [CallSignal("CA1", "answered_by", "machine_end_beep")]
    assert left == [CallSignal("CA2", "status", "completed")], "the hour-old one was swept first"
