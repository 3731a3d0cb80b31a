"""The clinic agent's own tests, as a user writes them: plain pytest, offline, no keys.

    pytest examples/clinic            # needs: pip install 'telephony[emulators]'

Each test says what the caller says and what the (emulated) model does, then checks what
the agent's real tools did: the whole phone path runs, faster than real time.
"""

import pytest

from telephony.testing import Conversation, ModelStep


@pytest.fixture
def agent(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINIC_DB", str(tmp_path / "clinic.sqlite3"))
    from clinic import agent

    return agent


async def test_a_caller_books_a_free_time(agent):
    model = [
        ModelStep(tool="free_slots", args={"day": "2027-01-05"}, say="I have nine, half past nine and ten."),
        ModelStep(tool="book", args={"day": "2027-01-05", "time": "09:30", "name": "Ada Lovelace"}, say="You are booked."),
    ]
    async with Conversation(agent, model) as call:
        offer = await call.caller("Any time on the fifth of January?")
        booking = await call.caller("Half past nine, please. I am Ada Lovelace.")
        await call.expect_said("booked", turn=booking)  # words offline; a criterion for the judge on the real model
    assert offer.tool_calls[0].response["result"][:3] == ["09:00", "09:30", "10:00"]
    assert booking.tool_calls[0].response == {"booked": "2027-01-05 09:30", "name": "Ada Lovelace"}


def test_a_taken_time_is_refused_and_the_model_is_told_why(agent):
    model = [ModelStep(tool="book", args={"day": "2027-01-05", "time": "12:15", "name": "Ada"}, say="Sorry, that time does not exist.")]
    with Conversation(agent, model) as call:
        turn = call.caller("Can I come at a quarter past twelve?")
    assert "12:15 is not an appointment time" in turn.tool_calls[0].response["error"]
