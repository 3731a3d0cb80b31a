"""Twilio Media Streams models: every fixture line parses; malformed input gets one clear error."""

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    media_payload,
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


def test_a_media_frame_as_twilio_writes_it_is_read_the_short_way():
    # The call core reads its 50 frames a second through `media_payload`; every fixture's
    # media frames (Twilio's own spelling) must take it, or the short way is dead code.
    frames = [line for path in FIXTURES for line in path.read_text().splitlines() if '"media"' in line]
    assert frames
    for raw in frames:
        message = parse_message(raw)
        assert isinstance(message, Media)
        assert media_payload(raw, message.stream_sid) == message.media.payload
    assert media_payload(media(), SID) == b"\xff" * 160
    assert media_payload(media(), "MZ" + "b" * 32) is None  # another stream's: the general way says so


# Twilio's media frame with one or two things changed: a field given a value that a broken
# or hostile client might send (another type, a sign, spaces, non-ASCII digits, bad base64)
# or taken away, an extra field, a repeated key, another spelling.
_ODD_COUNTERS = ["", " 4", "4 ", "+4", "-4", "4.0", "1_0", "\u0664", "9" * 19, "0x4", 4, 4.0, True, None, [], {}]
_ODD_VALUES = {
    ("event",): ["Media", "stop", "", 1, None],
    ("sequenceNumber",): _ODD_COUNTERS,
    ("streamSid",): ["", "MZ other", SID + " ", SID.upper(), 1, None],
    ("media",): [None, [], "x", {}],
    ("media", "track"): ["", "outbound", 1, None],
    ("media", "chunk"): _ODD_COUNTERS,
    ("media", "timestamp"): _ODD_COUNTERS,
    ("media", "payload"): ["", "AAAA====", "AAA==", "AA=", "AA==AA", " AAAA", "AAAA\n", "A", "AAA=", "*", "AA-_", "AA\u00e9A", 4, None],
    ("extra",): [{"ignored": [1, 2]}, None],
}
_DELETE = object()
_GOOD_BASE64 = st.binary(max_size=9).map(lambda b: base64.b64encode(b).decode())
_CHANGES = st.sampled_from(sorted(_ODD_VALUES, key=str)).flatmap(
    lambda path: st.tuples(st.just(path), st.sampled_from([*_ODD_VALUES[path], _DELETE]) | _GOOD_BASE64)
)
_TAILS = ["", "", "", ', "event": "stop"}', ', "event": "media"}', f', "streamSid": "{SID}"}}', ', "streamSid": "MZ2"}']
"""Ways to end the JSON: as it was, or with a key repeated (the last one counts)."""


@st.composite
def _media_frames(draw):
    message = json.loads(media())
    for path, value in draw(st.lists(_CHANGES, max_size=2)):
        where = message
        for key in path[:-1]:
            where = where.get(key) if isinstance(where, dict) else None
        if not isinstance(where, dict):
            continue
        if value is _DELETE:
            where.pop(path[-1], None)
        else:
            where[path[-1]] = value
    raw = json.dumps(message, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    tail = draw(st.sampled_from(_TAILS))
    return raw[:-1] + tail if tail else raw


@settings(max_examples=600, deadline=None)
@given(_media_frames())
def test_the_short_way_accepts_only_what_the_general_way_reads_as_the_same_media(raw):
    # Whatever `media_payload` accepts, `parse_message` must read as a media frame for that
    # stream carrying the same audio: otherwise a malformed frame would reach the caller's
    # audio path without being counted, or a good one would differ by the way it was read.
    payload = media_payload(raw, SID)
    if payload is None:
        return
    message = parse_message(raw)
    assert isinstance(message, Media) and message.stream_sid == SID and message.media.payload == payload


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
