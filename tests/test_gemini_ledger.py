"""The resend-after-resume ledger, every case as a plain object (no sockets, no waiting)."""

from __future__ import annotations

from telephony.gemini.ledger import ResumptionLedger
from telephony.gemini.messages import CallerAudio, RealtimeText, ToolResult

DIGIT = RealtimeText("The caller pressed the keypad key 4.")
AUDIO = CallerAudio(b"\0" * 640)


def send(ledger: ResumptionLedger, *messages) -> None:
    for message in messages:
        ledger.sent(message, ledger.on_the_wire(message))


def test_what_a_resumable_handle_does_not_cover_is_sent_again_in_order_and_audio_is_not():
    ledger = ResumptionLedger()
    first, second = RealtimeText("one"), RealtimeText("two")
    send(ledger, first, AUDIO, second)
    assert ledger.resumed() == [first, second]
    assert ledger.resumed() == [], "sent once more only"


def test_a_handle_covers_what_was_sent_before_it():
    ledger = ResumptionLedger()
    send(ledger, DIGIT)
    ledger.handle(last_consumed=None)  # no index from the server: the handle covers everything so far
    later = RealtimeText("later")
    send(ledger, later)
    assert ledger.resumed() == [later]


def test_with_the_servers_index_exactly_what_follows_it_is_sent_again():
    ledger = ResumptionLedger()
    a, b, c = RealtimeText("a"), RealtimeText("b"), RealtimeText("c")
    send(ledger, a, AUDIO, b, c)  # indices 1, 2 (audio), 3, 4
    ledger.handle(last_consumed=3)
    assert ledger.resumed() == [c]


def test_an_unanswered_call_makes_the_session_not_resumable_until_answered_and_covered():
    ledger = ResumptionLedger()
    ledger.handle(None)
    assert ledger.may_switch(agent_speaking=False)
    ledger.tool_called("call-1")
    assert not ledger.may_switch(agent_speaking=False), "a tool runs: handles are not resumable"
    send(ledger, ToolResult("call-1", "find_order", {"status": "ok"}))
    assert not ledger.may_switch(agent_speaking=False), "answered, but no handle covers it yet"
    ledger.handle(None)
    assert ledger.may_switch(agent_speaking=False)
    assert not ledger.may_switch(agent_speaking=True), "never mid-sentence"


def test_a_fresh_session_gets_the_lost_calls_results_as_text_once():
    ledger = ResumptionLedger()
    ledger.tool_called("call-7")
    ledger.fresh()
    result = ToolResult("call-7", "book", {"booked": "09:00"})
    wire = ledger.on_the_wire(result)
    assert isinstance(wire, RealtimeText) and "earlier book request" in wire.text and "09:00" in wire.text
    ledger.sent(result, wire)
    assert ledger.on_the_wire(result) is result, "orphaned once: a later result with that id is a real one"
    assert ledger.unanswered == set()


def test_results_of_calls_on_the_new_session_go_as_tool_responses():
    ledger = ResumptionLedger()
    ledger.fresh()
    ledger.tool_called("call-2")
    result = ToolResult("call-2", "book", {"booked": "10:00"})
    assert ledger.on_the_wire(result) is result


LOUD = CallerAudio(b"\x00\x20" * 320)  # 20 ms at about -12 dBFS: the caller talking


def test_the_callers_unanswered_words_go_to_a_new_connection_first_resumed_or_fresh():
    # Regression (bench reconnect): a connection replaced as the caller spoke heard only the
    # tail of their sentence (or nothing of it) and never answered it.
    ledger = ResumptionLedger()
    quiet = [CallerAudio(b"\0" * 640) for _ in range(50)]  # a second of line silence first
    send(ledger, *quiet, LOUD, DIGIT, LOUD)
    again = ledger.resumed()
    audio = [m for m in again if isinstance(m, CallerAudio)]
    assert again[-1] == DIGIT and audio[-2:] == [LOUD, LOUD], "the words, then what the handle may not cover"
    assert len(audio) == 2 + 15, "with 300 ms before the first loud block, not the second of silence"
    send(ledger, LOUD)
    assert ledger.fresh() == [LOUD], "a fresh session hears them too"
    assert ledger.speech.seconds == 0.0


def test_words_the_model_began_to_answer_are_not_sent_again():
    ledger = ResumptionLedger()
    send(ledger, LOUD, LOUD)
    ledger.answer_began()
    assert ledger.resumed() == []
    send(ledger, LOUD)
    ledger.tool_called("call-1")  # a tool call answers the turn too
    assert ledger.fresh() == []


def test_unanswered_words_are_bounded_to_the_last_eight_seconds():
    ledger = ResumptionLedger()
    send(ledger, *[LOUD] * 600)  # 12 s without an answer
    assert ledger.speech.seconds == 8.0
    assert len(ledger.resumed()) == 400
