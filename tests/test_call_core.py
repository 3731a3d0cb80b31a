"""The call core as a pure object: scripted inputs, expected actions. No sockets, no sleeps,
no clock but the one these tests pass in, so every ordering below is exact and repeatable."""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from telephony.audio.mulaw import encode_mulaw
from telephony.audio.wav import read_wav, resample_whole
from telephony.call.core import (
    STALL_NUDGE,
    Call,
    CallConfig,
    CallState,
    CancelTools,
    CloseStream,
    IllegalTransition,
    OpenAgent,
    RestartAgent,
    RunTool,
    SendGemini,
    SendTwilio,
    Settle,
)
from telephony.call.silence import SilenceRules
from telephony.call.stall import StallRules
from telephony.gemini.events import (
    AgentAudio,
    InputTranscript,
    Interrupted,
    OutputTranscript,
    Reconnected,
    SessionClosed,
    ToolCall,
    ToolCallCancelled,
    TurnComplete,
)
from telephony.gemini.messages import ActivityEnd, ActivityStart, CallerAudio, RealtimeText, ToolResult
from telephony.gemini.models import Scheduling

SPEECH = Path(__file__).resolve().parent.parent / "fixtures" / "speech" / "us_male.wav"
STREAM = "MZ" + "a" * 32
CALL = "CA" + "b" * 32
PROMPT = b"\x7f" * 800  # 100 ms of a recorded prompt
SILENT_FRAME = b"\xff" * 160


@cache
def speech_frames() -> tuple[bytes, ...]:
    """Real speech (espeak-ng fixture), as Twilio's 20 ms mu-law frames."""
    samples, rate = read_wav(SPEECH)
    mulaw = encode_mulaw(resample_whole(samples, rate, 8000).astype("<i2").tobytes())
    start = 1600  # skip the leading silence
    return tuple(mulaw[i : i + 160] for i in range(start, len(mulaw) - 160, 160))


def agent_pcm(ms: int) -> bytes:
    """Agent speech as Gemini sends it: 24 kHz PCM16."""
    t = np.arange(24 * ms) / 24000
    return (8000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()


class Script:
    """Drives one Call like the driver would, with a clock the test moves."""

    def __init__(self, **config: object) -> None:
        values: dict[str, object] = {"prompts": {"apology_trouble": PROMPT, "apology_closing": PROMPT}}
        values.update(config)
        self.now = 0.0
        self.call = Call(CallConfig(**values), self.now)  # type: ignore[arg-type]
        self.seq = 0
        self.chunk = 0

    def _twilio(self, message: dict[str, object], after: float) -> list[object]:
        self.now += after
        self.call.twilio_frame(json.dumps(message), self.now)
        return self.call.take_actions()

    def start(self, **parameters: str) -> list[object]:
        self.seq += 1
        start = {"accountSid": "AC" + "0" * 32, "callSid": CALL, "streamSid": STREAM, "customParameters": parameters}
        actions = self._twilio({"event": "start", "sequenceNumber": str(self.seq), "streamSid": STREAM, "start": start}, 0.0)
        self.call.agent_ready(self.now)
        return actions + self.call.take_actions()

    def media(self, frame: bytes = SILENT_FRAME, after: float = 0.02) -> list[object]:
        self.seq += 1
        self.chunk += 1
        media = {
            "track": "inbound",
            "chunk": str(self.chunk),
            "timestamp": str(self.chunk * 20),
            "payload": base64.b64encode(frame).decode(),
        }
        return self._twilio({"event": "media", "sequenceNumber": str(self.seq), "streamSid": STREAM, "media": media}, after)

    def mark(self, name: str, after: float = 0.0) -> list[object]:
        self.seq += 1
        return self._twilio({"event": "mark", "sequenceNumber": str(self.seq), "streamSid": STREAM, "mark": {"name": name}}, after)

    def dtmf(self, digit: str) -> list[object]:
        self.seq += 1
        dtmf = {"track": "inbound_track", "digit": digit}
        return self._twilio({"event": "dtmf", "sequenceNumber": str(self.seq), "streamSid": STREAM, "dtmf": dtmf}, 0.0)

    def stop(self) -> list[object]:
        self.seq += 1
        stop = {"accountSid": "AC" + "0" * 32, "callSid": CALL}
        return self._twilio({"event": "stop", "sequenceNumber": str(self.seq), "streamSid": STREAM, "stop": stop}, 0.0)

    def gemini(self, event: object, after: float = 0.0) -> list[object]:
        self.now += after
        self.call.gemini_event(event, self.now)  # type: ignore[arg-type]
        return self.call.take_actions()

    def tick(self, after: float) -> list[object]:
        self.now += after
        self.call.tick(self.now)
        return self.call.take_actions()

    def play_all_marks(self, actions: list[object]) -> list[object]:
        """Twilio plays everything sent so far and echoes each mark; returns what followed."""
        out: list[object] = []
        pending = marks(actions)
        while pending:
            name = pending.pop(0)
            more = self.mark(name, after=0.1)
            out += more
            pending += marks(more)
        return out


def twilio(actions: list[object], kind: str) -> list[dict[str, object]]:
    return [json.loads(a.text) for a in actions if isinstance(a, SendTwilio) and a.kind == kind]


def frames(actions: list[object]) -> int:
    """20 ms frames of audio sent (the core joins a batch's frames into one media message)."""
    return sum(-(-len(base64.b64decode(m["media"]["payload"])) // 160) for m in twilio(actions, "media"))  # type: ignore[index]


def marks(actions: list[object]) -> list[str]:
    return [m["mark"]["name"] for m in twilio(actions, "mark")]  # type: ignore[index]


def to_gemini(actions: list[object], kind: type) -> list[object]:
    return [a.message for a in actions if isinstance(a, SendGemini) and isinstance(a.message, kind)]


def unconfirmed_ms(script: Script) -> float:
    return script.call.playout.unconfirmed_ms


# --- start and refusal -----------------------------------------------------------------------


def test_start_opens_the_agent_with_the_streams_parameters_but_never_the_token():
    script = Script()
    actions = script.start(voice="Puck", agent="front-desk", token="secret")
    assert actions == [OpenAgent({"voice": "Puck", "agent": "front-desk"})]
    assert script.call.state is CallState.ACTIVE
    assert "token" not in script.call.record.parameters


def test_a_bad_token_is_refused_before_any_agent_is_opened():
    script = Script(admit_stream=lambda call_sid, token: None if token == "good" else ("bad_token", "stream token does not match"))
    actions = script.start(token="forged")
    assert not any(isinstance(a, OpenAgent) for a in actions)
    assert actions[-1] == CloseStream(1008, "stream token does not match")
    assert script.call.record.end_reason.startswith("refused") and script.call.outcome == "bad_token"
    assert not script.call.admitted


def test_no_start_within_the_timeout_closes_the_socket():
    script = Script(start_timeout_s=10.0)
    assert script.call.next_deadline() == 10.0
    assert script.tick(9.9) == []
    (close,) = script.tick(0.2)
    assert close == CloseStream(1008, "no start message within 10 s")


def test_illegal_state_changes_raise():
    script = Script()
    with pytest.raises(IllegalTransition):
        script.call._move(CallState.ACTIVE)  # no start yet


# --- caller audio, keypad ----------------------------------------------------------------------


def test_caller_audio_goes_to_gemini_in_blocks_of_the_configured_size():
    script = Script(caller_block_bytes=1920)  # 60 ms
    script.start()
    sent = [to_gemini(script.media(), CallerAudio) for _ in range(9)]
    counts = [len(s) for s in sent]
    assert counts == [0, 0, 1] * 3, "a block every three 20 ms frames"
    sizes = [len(m.pcm16k) for s in sent for m in s]  # type: ignore[attr-defined]
    assert sizes == [1920 - 128, 1920, 1920], "60 ms of the caller each (the first less the resampler's 4 ms group delay)"


def test_dtmf_becomes_realtime_text_and_a_keypad_line():
    script = Script()
    script.start()
    actions = script.dtmf("7")
    assert to_gemini(actions, RealtimeText) == [RealtimeText("The caller pressed the keypad key 7.")]
    assert [(line.speaker, line.text) for line in script.call.record.transcript] == [("keypad", "7")]


def test_too_many_malformed_messages_close_the_socket_with_1008():
    script = Script(malformed_limit=5)
    script.start()
    for _ in range(5):
        script.call.twilio_frame("{not json", script.now)
        assert not any(isinstance(a, CloseStream) for a in script.call.take_actions())
    script.call.twilio_frame(b"\x00binary", script.now)
    assert script.call.take_actions()[-1] == CloseStream(1008, "too many malformed messages")
    assert script.call.outcome == "malformed"


def test_bad_media_frames_are_counted_by_kind_and_never_reach_gemini():
    # Good frames take a short way through the core (`media_payload`); bad ones must still be
    # told apart and counted as before, whichever way they went.
    script = Script(caller_quiet_block_bytes=640)
    script.start()
    good = base64.b64encode(SILENT_FRAME).decode()
    frame = {"event": "media", "sequenceNumber": "9", "streamSid": STREAM, "media": {"chunk": "1", "timestamp": "20", "payload": good}}
    bad = [
        ({**frame, "streamSid": "MZ" + "c" * 32}, "wrong_stream"),
        ({**frame, "media": {**frame["media"], "payload": "***"}}, "unparseable"),  # type: ignore[dict-item]
        ({**frame, "sequenceNumber": "x"}, "unparseable"),
        ({**frame, "media": {**frame["media"], "payload": ""}}, "bad_payload_size"),  # type: ignore[dict-item]
    ]
    for message, kind in bad:
        actions = script._twilio(message, 0.02)
        assert not [a for a in actions if isinstance(a, SendGemini)], kind
        assert script.call.tally.counts[("malformed", (kind,))] >= 1, kind
    assert script.call.record.malformed == len(bad) and script.call.record.frames_in == 0
    assert [a for a in script._twilio(frame, 0.02) if isinstance(a, SendGemini)], "a good frame goes on to Gemini"
    assert script.call.record.frames_in == 1 and script.call.record.malformed == len(bad)
    counts, _ = script.call.tally.take()
    assert counts[("frames_in", ())] == 1 and counts[("malformed", ("unparseable",))] == 2, "as the metrics will read them"
    assert not script.call.tally, "taken: nothing is counted twice"


def closed(actions: list[object]) -> CloseStream | None:
    return next((a for a in actions if isinstance(a, CloseStream)), None)


def test_a_burst_of_unknown_events_or_marks_is_cut_but_one_now_and_then_is_not():
    script = Script()
    script.start()
    assert closed(script._twilio({"event": "newfeature", "streamSid": STREAM}, 0.5)) is None, "Twilio may add events"
    assert closed(script.mark("never-sent", after=0.5)) is None
    actions: list[object] = []
    for _ in range(25):  # within one second
        actions += script._twilio({"event": "newfeature", "streamSid": STREAM}, 0.001)
    assert closed(actions) == CloseStream(1008, "too many malformed messages in one second")


def test_keypad_floods_are_not_forwarded_and_count_as_malformed():
    script = Script()
    script.start()
    forwarded = []
    for _ in range(15):
        forwarded += to_gemini(script.dtmf("1"), RealtimeText)
    assert len(forwarded) == 10, "a person presses at most a few keys a second"
    assert script.call.record.malformed == 5


def test_caller_audio_faster_than_real_time_is_dropped_after_a_short_burst():
    script = Script(media_rate_limit=1.25)
    script.start()
    sent = []
    for _ in range(300):  # 6 s of audio in 0.3 s
        sent += to_gemini(script.media(after=0.001), CallerAudio)
    forwarded_ms = sum(len(m.pcm16k) for m in sent) / 32
    assert 1900 <= forwarded_ms <= 2300, f"{forwarded_ms} ms forwarded: only the 2 s burst allowance"
    assert script.call.ended and script.call.outcome == "malformed", "a sender that keeps it up is cut off"


def test_a_stream_turned_away_plays_the_prompt_and_never_opens_an_agent():
    script = Script()
    script.call.turn_away("server shutting down", "apology_closing", script.now)
    actions = script.start()
    assert not any(isinstance(a, OpenAgent) for a in actions)
    assert twilio(actions, "media"), "the closing message is played"
    assert script.call.state is CallState.ENDING and script.call.outcome == "turned_away"
    assert closed(script.play_all_marks(actions)) == CloseStream(1000, "server shutting down")


def test_a_reconnect_that_cut_the_agent_off_asks_it_to_continue():
    script = Script()
    script.start()
    script.gemini(AgentAudio(agent_pcm(1000)))
    script.gemini(OutputTranscript("Our opening hours are"))
    actions = script.gemini(Reconnected(resumed=True, reason="1011", attempts=1))
    (nudge,) = to_gemini(actions, RealtimeText)
    assert "Continue your answer" in nudge.text and "Our opening hours are" in nudge.text
    script.gemini(TurnComplete())
    assert to_gemini(script.gemini(Reconnected(resumed=True, reason="1011", attempts=1)), RealtimeText) == [], "nothing was cut"


# --- paced playout -----------------------------------------------------------------------------


def test_agent_audio_is_paced_by_marks_never_more_than_the_lead_ahead():
    script = Script(playout_lead_ms=300, playout_batch_ms=100)
    script.start()
    actions = script.gemini(AgentAudio(agent_pcm(2000)))  # a 2 s reply generated at once
    assert frames(actions) == 15, "300 ms of 20 ms frames go out at once"
    assert unconfirmed_ms(script) == 300
    assert script.call.playout.held_agent_ms == pytest.approx(2000 - 300, abs=20)
    played = 300
    while script.call.playout.held_agent_ms > 0 or marks(actions):
        name = marks(actions)[0]
        actions = script.mark(name, after=0.1)
        assert unconfirmed_ms(script) <= 300
        played += 20 * frames(actions)
        if not marks(actions):
            break
    actions = script.gemini(TurnComplete())  # the filter tail goes out too
    assert played + 20 * frames(actions) >= 2000


def test_clear_then_a_late_chunk_of_the_old_reply_is_dropped():
    script = Script(barge_in_min_speech_ms=300)
    script.start()
    script.gemini(AgentAudio(agent_pcm(1000)))  # Gemini still generating: no turnComplete
    cleared = []
    for frame in speech_frames()[:40]:
        cleared += twilio(script.media(frame), "clear")
        if cleared:
            break
    assert len(cleared) == 1, "the caller talking over held audio clears Twilio"
    late = script.gemini(AgentAudio(agent_pcm(500)))  # the rest of the reply that was cut
    assert twilio(late, "media") == [] and script.call.playout.held_agent_ms == 0
    assert twilio(script.gemini(Interrupted()), "clear") == [], "one clear per barge-in"
    new_reply = script.gemini(AgentAudio(agent_pcm(200)))
    assert frames(new_reply) >= 9, "the next reply plays"


def test_caller_speech_over_fully_generated_audio_clears_and_cuts_the_transcript():
    script = Script(barge_in_min_speech_ms=300)
    script.start()
    first = script.gemini(AgentAudio(agent_pcm(4000)))
    script.gemini(OutputTranscript("Our opening hours are nine to five, Monday to Friday."))
    script.gemini(TurnComplete())  # the whole answer is here; Gemini will never interrupt it
    script.mark(marks(first)[0], after=0.1)  # the caller heard ~100 ms
    spoken_ms = 0
    for frame in speech_frames()[:40]:
        spoken_ms += 20
        if twilio(script.media(frame), "clear"):
            break
    else:
        pytest.fail("no clear")
    assert spoken_ms >= 300, "a burst shorter than the minimum speech does not cut the agent off"
    assert script.call.playout.held_agent_ms == 0
    (line,) = script.call.record.transcript
    assert line.interrupted and line.text.endswith("…") and len(line.text) < 20
    assert script.call.record.interruptions == 1


def test_a_short_burst_does_not_cut_the_agent_off():
    script = Script(barge_in_min_speech_ms=400)
    script.start()
    script.gemini(AgentAudio(agent_pcm(2000)))
    frames = list(speech_frames()[:8]) + [SILENT_FRAME] * 20  # 160 ms of speech, then quiet
    assert not any(twilio(script.media(frame), "clear") for frame in frames)


def test_barge_in_can_be_left_to_gemini():
    script = Script(barge_in_min_speech_ms=0)
    script.start()
    script.gemini(AgentAudio(agent_pcm(2000)))
    assert not any(twilio(script.media(frame), "clear") for frame in speech_frames()[:50])
    assert len(twilio(script.gemini(Interrupted()), "clear")) == 1


def test_a_mark_echoed_after_a_clear_settles_its_waiter_as_not_heard():
    script = Script()
    script.start()
    script.gemini(AgentAudio(agent_pcm(200)))
    script.call.wait_heard(41, script.now)
    (sync,) = [n for n in marks(script.call.take_actions()) if n.startswith("sync")]
    heard_before = script.call.playout.heard_ms
    script.gemini(Interrupted())
    assert script.mark(sync) == [Settle(41, False)]
    assert script.call.playout.heard_ms == heard_before


# --- tools and goodbyes ------------------------------------------------------------------------


def test_a_tool_cancelled_after_its_response_went_out_stops_what_it_still_had_to_do():
    script = Script()
    script.start()
    call = ToolCall("call-1", "end_call", {})
    assert script.gemini(call) == [RunTool(call)]
    assert script.call.tool_finished(call, {"result": "ok"}, script.now)
    sent = [ToolResult("call-1", "end_call", {"result": "ok", "status": "ok", "retryable": False})]
    assert to_gemini(script.call.take_actions(), ToolResult) == sent
    assert script.gemini(ToolCallCancelled(("call-1",))) == [CancelTools(("call-1",))]
    assert not script.call.tool_finished(call, {"result": "again"}, script.now), "never answered twice"


def test_a_result_for_a_cancelled_tool_is_not_sent():
    script = Script()
    script.start()
    call = ToolCall("call-2", "lookup", {})
    script.gemini(call)
    script.gemini(ToolCallCancelled(("call-2",)))
    assert not script.call.tool_finished(call, {"result": "late"}, script.now)
    assert script.call.take_actions() == []


def test_a_goodbye_that_starts_late_is_heard_before_the_hang_up():
    script = Script(goodbye_grace_s=3.0)
    script.start()
    script.call.watch_goodbye(7, script.now)  # end_call answered; the model says nothing yet
    assert script.call.take_actions() == []
    assert script.tick(1.5) == [], "silence after the tool response is not the end"
    goodbye = script.gemini(AgentAudio(agent_pcm(1000)))  # speech starts 1.5 s after
    after = script.play_all_marks(goodbye)
    assert Settle(7, True) not in after, "the turn is not complete yet"
    done = script.gemini(TurnComplete())
    after = script.play_all_marks(done)
    assert after[-1] == Settle(7, True)
    heard = script.call.playout.heard_ms
    assert heard >= 1000, "the whole goodbye was played before the hang-up"


def test_a_silent_model_is_hung_up_on_after_the_grace_time():
    script = Script(goodbye_grace_s=3.0)
    script.start()
    script.call.watch_goodbye(8, script.now)
    assert script.tick(2.9) == []
    assert script.tick(0.2) == [Settle(8, True)]


def test_a_caller_who_talks_over_the_goodbye_keeps_the_call():
    script = Script(barge_in_min_speech_ms=300)
    script.start()
    script.call.watch_goodbye(9, script.now)
    script.gemini(AgentAudio(agent_pcm(3000)))
    settled = [a for frame in speech_frames()[:40] for a in script.media(frame) if isinstance(a, Settle)]
    assert settled == [Settle(9, False)]


def test_stop_during_the_goodbye_closes_at_once_and_settles_the_waiter():
    script = Script()
    script.start()
    script.call.watch_goodbye(10, script.now)
    script.gemini(AgentAudio(agent_pcm(2000)))
    actions = script.stop()
    assert Settle(10, False) in actions
    assert actions[-1] == CloseStream(1000, "call ended")
    assert script.call.record.end_reason == "caller hung up"
    assert script.gemini(AgentAudio(agent_pcm(100))) == [], "nothing after the end"


# --- how calls end -----------------------------------------------------------------------------


def test_the_time_limit_plays_the_closing_prompt_then_closes():
    script = Script(max_call_s=60.0, idle_timeout_s=1000.0)
    script.start()
    script.gemini(AgentAudio(agent_pcm(2000)))
    actions = script.tick(60.0)
    assert len(twilio(actions, "clear")) == 1, "the agent is silenced first"
    assert frames(actions) == len(PROMPT) // 160
    assert not any(isinstance(a, CloseStream) for a in actions)
    assert script.gemini(AgentAudio(agent_pcm(500))) == [], "the agent stays silent"
    closing = script.play_all_marks(actions)
    assert closing[-1] == CloseStream(1000, "call reached its 60 s limit")
    assert script.call.outcome == "time_limit"


def test_a_lost_gemini_plays_the_apology_and_ends_even_if_no_mark_returns():
    script = Script(final_prompt_timeout_s=10.0)
    script.start()
    actions = script.gemini(SessionClosed(1011, "could not reconnect"))
    assert frames(actions) == len(PROMPT) // 160
    assert script.tick(9.0) == []
    assert script.tick(1.5)[-1] == CloseStream(1000, "gemini failed: 1011 could not reconnect")
    assert any(line.speaker == "system" for line in script.call.record.transcript)


def test_idle_timeout_ends_a_silent_socket():
    script = Script(idle_timeout_s=15.0, silence=SilenceRules(reprompt_s=0))  # no check-in: only the socket's silence
    script.start()
    script.media()
    assert script.tick(14.0) == []
    assert script.tick(1.1)[-1] == CloseStream(1000, "call ended")
    assert script.call.outcome == "idle_timeout"


def test_a_reconnect_plays_out_the_half_said_frame_and_is_counted():
    script = Script()
    script.start()
    script.gemini(AgentAudio(agent_pcm(30)))  # 1.5 frames: half a frame waits for more
    actions = script.gemini(Reconnected(resumed=True, reason="goAway", attempts=1))
    assert frames(actions) >= 1
    assert script.call.record.reconnects == 1


def test_dtmf_and_tool_results_are_emitted_while_gemini_reconnects():
    # The core never knows about connections: its sends queue in the Gemini supervisor,
    # which delivers them on the next connection (tests/test_reliability.py proves that end).
    script = Script()
    script.start()
    call = ToolCall("call-3", "lookup", {})
    script.gemini(call)
    assert to_gemini(script.dtmf("5"), RealtimeText)
    assert script.call.tool_finished(call, {"ok": True}, script.now)
    assert to_gemini(script.call.take_actions(), ToolResult)


# --- manual turn-taking (Gemini's VAD off) -----------------------------------------------------


def test_manual_activity_frames_the_callers_turn_with_activity_signals():
    script = Script(manual_activity=True, activity_silence_ms=400)
    script.start()
    sent: list[object] = []
    for _ in range(20):
        sent += script.media()
    assert to_gemini(sent, CallerAudio) == [], "silence is not sent as a turn"
    for frame in speech_frames()[:50]:
        sent += script.media(frame)
    for _ in range(30):
        sent += script.media()
    kinds = [type(a.message).__name__ for a in sent if isinstance(a, SendGemini)]
    assert kinds[0] == "ActivityStart" and kinds[-1] == "ActivityEnd"
    assert kinds.count("ActivityStart") == kinds.count("ActivityEnd") >= 1
    audio = sum(len(m.pcm16k) for m in to_gemini(sent, CallerAudio))  # type: ignore[attr-defined]
    assert audio >= 50 * 640, "the whole utterance, with the audio from before its onset"
    assert to_gemini(sent, ActivityStart) and to_gemini(sent, ActivityEnd)


def test_after_a_reconnect_an_unanswered_caller_turn_gets_an_answer():
    from telephony.call.core import RECONNECT_NUDGE

    script = Script()
    script.start()
    for frame in speech_frames()[:40]:
        script.media(frame)
    for _ in range(40):  # the caller stops; the connection drops before Gemini answers
        script.media()
    nudge = to_gemini(script.gemini(Reconnected(resumed=True, reason="closed 1011", attempts=1)), RealtimeText)
    assert nudge == [RealtimeText(RECONNECT_NUDGE)]
    script.gemini(AgentAudio(agent_pcm(200)))  # answered: the next reconnect needs no nudge
    script.gemini(TurnComplete())
    assert to_gemini(script.gemini(Reconnected(resumed=True, reason="goAway", attempts=1)), RealtimeText) == []


def test_an_answer_generated_before_our_voice_detection_closed_the_callers_turn_still_counts_as_the_answer():
    # Regression (bench reconnect, "between turns"): Gemini's turn detection and a fast reply
    # ended the agent's turn before ours saw the caller's silence; the caller's turn stayed
    # "unanswered", and a reconnect as they began their next sentence told the model their
    # words may not have reached it: it answered that note, over the caller, and their next
    # sentence was never answered.
    script = Script()
    script.start()
    for frame in speech_frames()[:40]:
        script.media(frame)
    for _ in range(15):  # Gemini's detection ends the turn first: its answer is generated whole
        script.media()
    script.gemini(AgentAudio(agent_pcm(600)))
    script.gemini(TurnComplete())
    for _ in range(40):  # our detection sees the silence after the answer was generated
        script.media()
    assert not script.call.caller_turn.spoke_last, "the caller's turn was answered"
    assert to_gemini(script.gemini(Reconnected(resumed=True, reason="closed 1000", attempts=1)), RealtimeText) == []


def test_a_slow_tool_plays_the_hold_tone_until_it_is_done_and_never_over_the_caller():
    script = Script()
    script.start()
    script.call.start_hold(script.now)
    first = script.call.take_actions()
    assert frames(first) == 15, "the hold tone, paced like any audio"
    more: list[object] = []
    for name in marks(first):  # Twilio plays on: more of the tone follows
        more += script.mark(name, after=0.1)
    assert twilio(more, "media"), "it repeats while the tool works"
    script.call.stop_hold(script.now)
    assert script.call.take_actions() == []
    leftover = script.play_all_marks(more)  # ends: nothing more is released
    assert twilio(leftover, "media") == [], "the result is back: no more hold tone"
    assert script.call.playout.idle
    script.call.start_hold(script.now)
    script.call.take_actions()
    for frame in speech_frames()[:10]:  # the caller talks: the hold tone stops
        script.media(frame)
    assert script.call.hold.reasons == 0


def test_waiters_settled_with_the_closing_prompt_still_hear_about_it():
    # Regression: when the last prompt's mark and another waiter's mark came back in one
    # batch, the call closed and the other waiter was never settled.
    script = Script(max_call_s=60.0, idle_timeout_s=1000.0)
    script.start()
    actions = script.tick(60.0)  # the closing prompt is queued
    script.call.wait_heard(5, script.now)  # a tool waits for the same audio
    (prompt_mark, sync_mark) = marks(actions + script.call.take_actions())
    script.call.playout.ledger.mark_echoed(prompt_mark)  # Twilio echoes both in one go ...
    script.call.playout.resolved.append((script.call._ending.token, True))  # type: ignore[union-attr]
    actions = script.mark(sync_mark)
    assert Settle(5, True) in actions and actions[-1] == CloseStream(1000, "call reached its 60 s limit")


def test_with_recording_on_the_notice_is_played_before_the_agent_and_both_sides_are_kept():
    script = Script(record_audio=True, recording_notice=True, prompts={"recording_notice": b"\x20" * 800})
    actions = script.start()
    assert twilio(actions, "media"), "the notice goes out at once"
    assert actions.index(next(a for a in actions if isinstance(a, OpenAgent))) > 0
    script.media(after=0.02)
    stereo = np.frombuffer(script.call.take_recording(), dtype="<i2").reshape(-1, 2)
    assert len(stereo) == 160, "20 ms of both sides per caller frame"
    assert np.abs(stereo[:, 1]).max() > 0, "the right channel carries what the caller was hearing"
    assert Script().call.take_recording() == b"", "nothing is kept when recording is off"


def test_a_clear_jumps_the_outbound_queue_dropping_media_but_keeping_marks():
    from telephony.call.outbound import OutboundQueue
    from telephony.twilio.media_streams import Outbound

    queue = OutboundQueue()
    for kind, text in [("media", "m1"), ("mark", "k1"), ("media", "m2"), ("clear", "c"), ("media", "m3")]:
        queue.push(Outbound(kind), text)
    assert [queue.pop() for _ in range(len(queue))] == ["c", "k1", "m3"]


# --- model families: Extended Thinking's split turns, NON_BLOCKING tools -----------------------

IN_PROGRESS = TurnComplete(interaction_status="IN_PROGRESS")
IDLE = TurnComplete(interaction_status="IDLE")


def test_an_extended_thinking_filler_is_not_the_end_of_the_goodbye():
    # Extended Thinking: "One moment" + IN_PROGRESS, background work, then the goodbye + IDLE.
    script = Script(goodbye_grace_s=3.0)
    script.start()
    script.call.watch_goodbye(11, script.now)
    filler = script.gemini(AgentAudio(agent_pcm(600)))
    script.play_all_marks(filler + script.gemini(IN_PROGRESS))
    assert script.tick(5.0) == [], "silence while the agent works on is not the end of its turn"
    goodbye = script.gemini(AgentAudio(agent_pcm(1000)))
    assert Settle(11, True) not in script.play_all_marks(goodbye)
    after = script.play_all_marks(script.gemini(IDLE))
    assert after[-1] == Settle(11, True)
    assert script.call.playout.heard_ms >= 1600, "filler and goodbye both heard before the hang-up"


def test_in_progress_does_not_hold_back_a_transfer_the_agent_waits_for():
    # The announcement came before the call: IN_PROGRESS waits for our tool, so quiet is quiet.
    script = Script()
    script.start()
    script.play_all_marks(script.gemini(AgentAudio(agent_pcm(600))) + script.gemini(IN_PROGRESS))
    call = ToolCall("t-1", "transfer_call", {"to": "+15550001111"})
    script.gemini(call)
    script.call.watch_goodbye(12, script.now, grace_s=0.4)
    assert script.tick(0.5) == [Settle(12, True)]


def test_an_unusual_turn_end_is_logged_and_kept_in_the_transcript():
    script = Script()
    script.start()
    script.gemini(AgentAudio(agent_pcm(200)))
    script.gemini(TurnComplete(reason="GENERATED_AUDIO_SAFETY"))
    assert any(line.speaker == "system" and "GENERATED_AUDIO_SAFETY" in line.text for line in script.call.record.transcript)
    script.gemini(TurnComplete(reason="NEED_MORE_INPUT"))  # an ordinary end says nothing
    assert sum(line.speaker == "system" for line in script.call.record.transcript) == 1


def test_the_hold_tone_waits_while_the_agent_talks_over_a_running_tool_then_fills_the_silence():
    script = Script()
    script.start()
    speech = script.gemini(AgentAudio(agent_pcm(600)))  # 3.8 talks while its NON_BLOCKING tool runs
    script.call.start_hold(script.now)
    assert script.call.take_actions() == [], "no hold tone over the agent"
    released = speech + script.gemini(TurnComplete())
    tone: list[object] = []
    for name in marks(released):  # Twilio plays the agent's words out
        tone += script.mark(name, after=0.1)
    assert frames(tone) >= 5, "the agent is done and the tool still runs: the hold tone fills the silence"
    script.call.stop_hold(script.now)
    assert script.call.hold.token is None


def test_a_tool_result_says_what_happened_and_carries_the_tools_scheduling():
    script = Script()
    script.start()
    empty = ToolCall("c-1", "find_order", {"order": "9"})
    script.gemini(empty)
    assert script.call.tool_finished(empty, {"result": []}, script.now, scheduling=Scheduling.INTERRUPT)
    (sent,) = to_gemini(script.call.take_actions(), ToolResult)
    assert sent.scheduling is Scheduling.INTERRUPT
    assert sent.response["status"] == "no_results" and sent.response["retryable"] is False and sent.response["message"]
    failed = ToolCall("c-2", "find_order", {})
    script.gemini(failed)
    script.call.tool_finished(failed, {"error": "the backend is down", "status": "timeout", "retryable": True}, script.now)
    (sent,) = to_gemini(script.call.take_actions(), ToolResult)
    assert sent.response == {"error": "the backend is down", "status": "timeout", "retryable": True, "message": "the backend is down"}
    assert script.call.record.tool_calls[0].response == {"result": []}, "the record keeps what the tool said"


# --- silent stalls (telephony.call.stall) ---------------------------------------------------


def caller_says_something(script: Script) -> float:
    """The caller speaks, then is silent until their turn ends; returns when their speech ended."""
    for frame in speech_frames()[:60]:
        script.media(frame)
    while script.call.caller.voice is not None and script.call.caller.voice.speaking:
        script.media()
    assert script.call.caller_turn.stopped_at is not None
    return script.call.caller_turn.stopped_at


def stall_script(**rules: float) -> Script:
    return Script(stall=StallRules(**rules))  # type: ignore[arg-type]


def test_a_model_that_never_answers_is_nudged_then_resumed_then_replaced_then_the_call_ends():
    script = stall_script(answer_s=2.0, step_s=1.0, hold_after_s=2.0)
    script.start()
    ended = caller_says_something(script)
    script.gemini(InputTranscript("Are you open on Sunday?"))  # Gemini has the caller's words
    assert script.call.next_deadline() == pytest.approx(ended + 2.0)
    script.now = ended + 2.0
    script.call.tick(script.now)
    for _ in range(3):  # nudge, resume, fresh: none answered
        assert script.call.state is CallState.ACTIVE
        script.tick(1.0)
    assert script.call.state is CallState.ENDING, "the apology plays, then the call ends"
    assert script.call.outcome == "gemini_stalled"
    (stall,) = script.call.record.stalls
    assert stall == {"kind": "no_answer", "answered_at": "gave_up", "silence_ms": None, "at_ms": script.call.record.elapsed_ms()}


def test_a_call_that_keeps_stalling_ends_with_an_apology_instead_of_looping():
    script = stall_script(answer_s=2.0, max_per_call=0)
    script.start()
    ended = caller_says_something(script)
    script.gemini(InputTranscript("Hello?"))
    script.now = ended + 2.0
    script.call.tick(script.now)
    assert script.call.state is CallState.ENDING and script.call.outcome == "gemini_stalled"


def test_each_recovery_step_is_taken_in_turn_and_the_first_audio_ends_the_stall():
    script = stall_script(answer_s=2.0, step_s=1.0, hold_after_s=2.0)
    script.start()
    ended = caller_says_something(script)
    script.gemini(InputTranscript("Are you open on Sunday?"))
    script.now = ended + 2.0
    script.call.tick(script.now)
    first = script.call.take_actions()
    assert to_gemini(first, RealtimeText) == [RealtimeText(STALL_NUDGE)], "step 1: a nudge on the same session"
    assert frames(first) > 0, "the caller hears the hold tone, not dead air"
    assert not any(isinstance(a, RestartAgent) for a in first)
    second = script.tick(1.0)
    assert RestartAgent(fresh=False, reason="stalled (no_answer)") in second and to_gemini(second, RealtimeText)
    third = script.tick(1.0)
    assert [a for a in third if isinstance(a, RestartAgent)] == [
        RestartAgent(fresh=True, reason="stalled (no_answer), resuming did not help")
    ]
    script.gemini(Reconnected(resumed=False, reason="stalled", attempts=1), after=0.2)
    assert to_gemini(script.call.take_actions(), RealtimeText) == [], "no second nudge from the reconnect"
    script.gemini(AgentAudio(agent_pcm(400)), after=0.1)
    (stall,) = script.call.record.stalls
    began_ms = script.call.record.elapsed_ms() - 4300  # when the caller's wait began: the trace's stall span starts there
    assert stall == {
        "kind": "no_answer",
        "answered_at": "fresh",
        "silence_ms": pytest.approx(4300, abs=1),
        "at_ms": pytest.approx(began_ms, abs=1),
    }
    assert script.call.hold.reasons == 0, "the hold tone stopped with the agent's answer"
    assert script.call.stall.deadline() is None


def test_a_prompt_answer_is_never_a_stall():
    script = stall_script(answer_s=2.0)
    script.start()
    ended = caller_says_something(script)
    script.gemini(InputTranscript("Hi"))
    script.now = ended + 1.2
    script.gemini(AgentAudio(agent_pcm(500)))
    script.gemini(TurnComplete())
    assert script.call.stall.deadline() is None
    script.tick(5.0)
    assert script.call.record.stalls == [] and script.call.stall.stalls == []


def test_silence_while_a_tool_runs_or_before_gemini_has_the_words_is_not_a_stall():
    script = stall_script(answer_s=2.0)
    script.start()
    ended = caller_says_something(script)
    assert script.call.stall.deadline() is None, "Gemini has not transcribed the caller yet"
    script.gemini(InputTranscript("Where is my order?"))
    call = ToolCall("t-1", "find_order", {})
    script.gemini(call)
    script.now = ended + 10.0
    script.call.tick(script.now)
    assert script.call.stall.stalls == [], "a running tool is not a stall"


def test_an_empty_turn_and_a_phantom_interrupt_are_named():
    script = stall_script(answer_s=2.0)
    script.start()
    ended = caller_says_something(script)
    script.gemini(InputTranscript("Hello?"))
    script.gemini(TurnComplete(), after=0.3)  # nothing said
    script.now = ended + 2.0
    script.call.tick(script.now)
    assert script.call.stall.stalls[-1].kind.value == "empty_turn"
    script.gemini(AgentAudio(agent_pcm(200)), after=0.1)
    script.gemini(TurnComplete())
    script.gemini(Interrupted(), after=1.0)  # the caller is silent: a phantom
    script.tick(2.1)
    assert script.call.stall.stalls[-1].kind.value == "phantom_interrupt"


def test_a_reply_that_stops_mid_sentence_is_noticed_once_its_audio_was_heard():
    script = stall_script(answer_s=2.0)
    script.start()
    script.play_all_marks(script.gemini(AgentAudio(agent_pcm(400))))  # heard; no turnComplete, no more audio
    quiet_at = script.now
    assert script.call.stall.deadline() == pytest.approx(quiet_at + 2.0)
    script.tick(2.0)
    assert script.call.stall.stalls[-1].kind.value == "mid_sentence"


def test_tone_like_audio_without_a_transcript_is_cut_and_recovered():
    script = stall_script(answer_s=2.0, tone_ms=3000)
    script.start()
    sent = []
    for _ in range(8):  # 4 s of "speech" and not a word of transcript
        sent += script.gemini(AgentAudio(agent_pcm(500)), after=0.05)
    assert script.call.stall.stalls[-1].kind.value == "tone"
    assert twilio(sent, "clear"), "the caller stops hearing it at once"
    assert to_gemini(sent, RealtimeText) == [RealtimeText(STALL_NUDGE)]


def test_a_slow_tool_gets_the_hold_tone_at_its_deadline_and_call_control_never_does():
    script = Script(hold_after_s=1.0)
    script.start()
    slow = ToolCall("t-1", "find_order", {})
    script.gemini(slow)
    assert script.call.next_deadline() == pytest.approx(script.now + 1.0)
    assert frames(script.tick(0.9)) == 0, "not yet"
    assert frames(script.tick(0.1)) > 0, "a second on: the hold tone"
    script.call.tool_finished(slow, {"result": "ok"}, script.now)
    assert script.call.hold.reasons == 0 and script.call.hold.token is None, "the result is back: the tone stops"
    goodbye = ToolCall("t-2", "end_call", {})
    script.gemini(goodbye)
    assert frames(script.tick(5.0)) == 0, "end_call waits for the goodbye itself: no hold tone"


def test_an_answer_that_starts_before_our_voice_detection_ends_the_turn_still_gets_its_wait_measured():
    script = Script()
    script.start()
    for frame in speech_frames()[:60]:
        script.media(frame)
    spoke_until = script.now
    for _ in range(10):  # 200 ms of silence: Gemini's detection may end the turn before ours
        script.media()
    script.gemini(AgentAudio(agent_pcm(400)))
    while script.call.caller.voice is not None and script.call.caller.voice.speaking:
        script.media()
    latency_ms = script.call.turn.latency_ms
    assert latency_ms is not None, "the answer's wait was measured"
    assert 0 <= latency_ms <= (script.call.turn.started_at - spoke_until) * 1000 + 100
    assert not script.call.caller_turn.spoke_last, "the caller is being answered"


def test_the_callers_quiet_goes_in_bigger_blocks_unless_an_answer_to_them_is_due():
    script = Script(caller_quiet_block_bytes=3200)
    script.start()
    script.media()  # the resampler's delay
    waiting = [len(to_gemini(script.media(), CallerAudio)) for _ in range(10)]
    spoken = [len(to_gemini(script.media(frame), CallerAudio)) for frame in speech_frames()[:40]]
    answer_due = [len(to_gemini(script.media(), CallerAudio)) for _ in range(40)]
    script.gemini(AgentAudio(agent_pcm(2000)))  # the answer: 2 s queued at Twilio
    while_heard = [len(to_gemini(script.media(), CallerAudio)) for _ in range(12)]
    loud = encode_mulaw((np.sin(np.arange(160) / 8000 * 2 * np.pi * 300) * 3000).astype("<i2").tobytes())
    (onset,) = to_gemini(script.media(loud), CallerAudio)
    assert sum(waiting) == 2, f"nobody owed an answer: one message per 100 ms of quiet: {waiting}"
    assert sum(spoken) >= 36, f"their speech goes every 20 ms: {spoken}"
    assert answer_due == [1] * 40, "after the caller spoke, every 20 ms of silence goes at once: it ends their turn"
    assert sum(while_heard) == 2, f"the answer begun: one message per 100 ms again: {while_heard}"
    assert len(onset.pcm16k) == 3 * 640, "the caller's first loud frame goes at once, with the 40 ms of quiet that waited"
