"""Twilio Media Streams models: every fixture line parses; malformed input gets one clear error."""

import base64
import json
from pathlib import Path

import pytest

from telephony.twilio.media_streams import (
    Connected,
    Dtmf,
    Media,
    Start,
    Stop,
    TwilioProtocolError,
    UnknownEvent,
    check_media_format,
    clear_message,
    mark_message,
    media_message,
    parse_message,
)

FIXTURES = sorted((Path(__file__).parent.parent / "fixtures").glob("*.jsonl"))
SID = "MZ" + "a" * 32


def media(**override):
    message = {
        "event": "media",
        "sequenceNumber": "4",
        "streamSid": SID,
        "media": {"track": "inbound", "chunk": "3", "timestamp": "40", "payload": base64.b64encode(b"\xff" * 160).decode()},
    }
    message.update(override)
    return json.dumps(message)


def test_fixtures_exist():
    assert {p.stem for p in FIXTURES} >= {"one_sentence", "barge_in", "dtmf", "hang_up"}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_every_fixture_line_parses_in_twilio_order(path):
    messages = [parse_message(line) for line in path.read_text().splitlines() if line]
    assert isinstance(messages[0], Connected)
    assert isinstance(messages[1], Start)
    assert isinstance(messages[-1], Stop)
    sequence = [m.sequence_number for m in messages[1:]]
    assert sequence == list(range(1, len(sequence) + 1))
    chunks = [m for m in messages if isinstance(m, Media)]
    assert [m.media.chunk for m in chunks] == list(range(1, len(chunks) + 1))
    assert [m.media.timestamp for m in chunks] == [20 * i for i in range(len(chunks))]
    assert all(len(m.media.payload) == 160 for m in chunks)
    check_media_format(messages[1])


def test_dtmf_fixture_carries_digits():
    path = next(p for p in FIXTURES if p.stem == "dtmf")
    digits = [m.dtmf.digit for m in map(parse_message, path.read_text().splitlines()) if isinstance(m, Dtmf)]
    assert digits == ["4", "2", "#"]


def test_numbers_arrive_as_strings_and_go_back_as_strings():
    message = parse_message(media())
    assert isinstance(message, Media) and message.media.timestamp == 40
    assert json.loads(message.to_json())["media"]["timestamp"] == "40"


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        '{"no_event": 1}',
        '{"event": 7}',
        media(media={"chunk": "1", "timestamp": "0", "payload": "***"}),
        media(media={"chunk": "1", "timestamp": "0"}),
        media(sequenceNumber="x"),
        media(streamSid='MZ"; injected'),
        '{"event": "start", "sequenceNumber": "1", "streamSid": "MZ1"}',
        '{"event": "dtmf", "sequenceNumber": "1", "streamSid": "MZ1", "dtmf": {"digit": "12"}}',
        "x" * 70000,
    ],
)
def test_malformed_messages_raise_the_protocol_error(raw):
    with pytest.raises(TwilioProtocolError):
        parse_message(raw)


def compact(raw: str) -> str:
    """As Twilio writes its frames: no spaces, `event` first (the form parsed the fast way)."""
    return json.dumps(json.loads(raw), separators=(",", ":"))


@pytest.mark.parametrize(
    "raw",
    [
        media(),
        media(media={"chunk": "1", "timestamp": "0", "payload": "***"}),
        media(media={"chunk": "1", "timestamp": "0"}),
        media(sequenceNumber="x"),
        media(streamSid='MZ"; injected'),
        media(extra={"ignored": True}),
        '{"event": "media", "sequenceNumber": "1", "streamSid": "MZ1", "stop": {"accountSid": "AC", "callSid": "CA"}, "event": "stop"}',
    ],
)
def test_a_media_frame_as_twilio_writes_it_parses_to_what_any_other_spelling_does(raw):
    # Compact media frames take a shorter way through validation; what comes out (the
    # message, or the error and its words) must not depend on the way.
    def outcome(text: str | bytes):
        try:
            return parse_message(text)
        except TwilioProtocolError as exc:
            return str(exc)

    fast = compact(raw) if raw.count('"event"') == 1 else raw.replace(": ", ":").replace(", ", ",")
    assert fast.startswith('{"event":"media"')
    assert outcome(fast) == outcome(fast.encode()) == outcome(raw)


def test_unknown_events_are_tolerated():
    message = parse_message('{"event": "brand-new", "streamSid": "MZ1"}')
    assert isinstance(message, UnknownEvent) and message.event == "brand-new"


def test_other_media_formats_are_refused():
    start = Start.model_validate(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": SID,
            "start": {
                "accountSid": "AC1",
                "callSid": "CA1",
                "streamSid": SID,
                "mediaFormat": {"encoding": "audio/l16", "sampleRate": 16000, "channels": 1},
            },
        }
    )
    with pytest.raises(TwilioProtocolError, match="unsupported media format"):
        check_media_format(start)


def test_outbound_builders_produce_twilio_shapes():
    assert json.loads(media_message(SID, b"\x00\xff")) == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": "AP8="},
    }
    assert json.loads(mark_message(SID, "reply-1")) == {"event": "mark", "streamSid": SID, "mark": {"name": "reply-1"}}
    assert json.loads(clear_message(SID)) == {"event": "clear", "streamSid": SID}
