"""The call core's parts, each as a plain object (instant): the playout's batches, the hold
tone, the tools in flight and the caller's audio path. The core's own tests (test_call_core)
drive them together through `Call`."""

import numpy as np

from telephony.audio.compiled import COMPILED
from telephony.audio.level import QUIET_RMS, rms16
from telephony.audio.mulaw import decode_mulaw, encode_mulaw
from telephony.audio.transcode import FRAME_BYTES
from telephony.call.caller_audio import SPEECH_STARTED, CallerAudioPath
from telephony.call.hold import HoldTone
from telephony.call.playout import MarkOut, MediaOut, Playout, Source
from telephony.call.rules import CallConfig
from telephony.call.tools import ToolsInFlight
from telephony.gemini.events import ToolCall
from telephony.gemini.messages import ActivityEnd, ActivityStart, CallerAudio

from test_call_core import speech_frames


def test_a_reply_goes_out_in_whole_batches_each_closed_by_a_mark():
    playout = Playout(lead_ms=300, batch_ms=100)
    playout.hold(b"\x01" * (FRAME_BYTES * 12), Source.AGENT)  # 240 ms
    out = playout.release()
    media = [item for item in out if isinstance(item, MediaOut)]
    assert [len(m.mulaw) for m in media] == [800, 800, 320], "100 ms batches, the rest last"
    assert [m.frames for m in media] == [5, 5, 2]
    assert [type(item) for item in out] == [MediaOut, MarkOut] * 3
    assert playout.held_agent_ms == 0


def test_the_lead_holds_back_what_twilio_has_not_confirmed():
    playout = Playout(lead_ms=300, batch_ms=100)
    playout.hold(b"\x01" * 8000, Source.AGENT)  # 1 s
    first = playout.release()
    assert sum(len(m.mulaw) for m in first if isinstance(m, MediaOut)) == 2400, "300 ms at Twilio, no more"
    assert playout.held_agent_ms == 700
    (mark, *_) = [m for m in first if isinstance(m, MarkOut)]
    playout.mark_echoed(mark.name)
    assert sum(len(m.mulaw) for m in playout.release() if isinstance(m, MediaOut)) == 800, "one batch heard: one more goes"


def test_a_short_prompt_frame_and_the_agent_after_it_share_a_batch_in_whole_frames():
    playout = Playout(lead_ms=300, batch_ms=100)
    playout.hold(b"\x02" * 100, Source.PROMPT)  # the last, short frame of a prompt
    playout.hold(b"\x01" * (FRAME_BYTES * 10), Source.AGENT)
    media = [item for item in playout.release() if isinstance(item, MediaOut)]
    assert len(media[0].mulaw) == 100 + 5 * FRAME_BYTES, "frames are never cut: the batch ends a frame past 100 ms"


def test_the_hold_tone_plays_into_silence_until_its_last_reason_goes():
    playout = Playout()
    tokens = iter(range(-1, -100, -1))
    hold = HoldTone(playout, lambda: next(tokens))
    assert hold.add(may_play=True), "one slow tool: the tone"
    assert not hold.add(may_play=True), "a second reason: the same tone goes on"
    first = hold.token
    assert first is not None and hold.period_heard(first), "heard: another period is due"
    hold.drop()
    assert hold.reasons == 1 and hold.token == first
    hold.drop()
    assert hold.reasons == 0 and hold.token is None and not playout.release(), "the last reason gone: silence"


def test_the_hold_tone_waits_while_the_agent_talks():
    playout = Playout()
    hold = HoldTone(playout, lambda: -1)
    playout.hold(b"\x01" * 1600, Source.AGENT)
    assert not hold.add(may_play=True), "agent audio held: no tone over it"
    playout.drop_held(Source.AGENT)
    assert hold.resume(may_play=True), "quiet again: the tone"
    hold.pause()
    assert hold.reasons == 1 and hold.token is None


def test_a_tool_becomes_slow_after_hold_after_s_unless_it_is_call_control():
    tools = ToolsInFlight(hold_after_s=1.0, without_hold=frozenset({"end_call"}))
    tools.started(ToolCall("a", "book", {}), now=0.0)
    tools.started(ToolCall("b", "end_call", {}), now=0.0)
    assert tools.deadline() == 1.0
    assert tools.now_slow(0.5) == 0 and tools.now_slow(1.0) == 1 and tools.now_slow(2.0) == 0
    assert tools.answered("a") == (True, True), "wanted, and its hold tone ends"
    assert tools.answered("a") == (False, False), "a second answer is not wanted"
    assert tools.cancel_all() == ("b",) and tools.deadline() is None


def test_cancelled_tools_end_their_hold_reasons():
    tools = ToolsInFlight(hold_after_s=1.0, without_hold=frozenset())
    for call_id in ("a", "b", "c"):
        tools.started(ToolCall(call_id, "slow", {}), now=0.0)
    assert tools.now_slow(1.0) == 3
    assert tools.cancelled(["a", "b"]) == 2 and tools.running == {"c"}


def test_manual_turn_taking_frames_the_speech_with_its_preroll_in_order():
    path = CallerAudioPath(CallConfig(manual_activity=True, caller_block_bytes=640))
    silence = encode_mulaw(b"\x00\x00" * 160)
    out: list[object] = []
    for _ in range(20):
        out += path.feed(silence).out
    assert out == [], "silence before speech is kept as pre-roll, not sent"
    for frame in speech_frames()[:60]:
        out += path.feed(frame).out
    start = out.index(ActivityStart())
    assert out[start + 1] == SPEECH_STARTED, "where the caller's speech began, for a barge-in"
    preroll = out[start + 2]
    assert isinstance(preroll, CallerAudio), "the audio from just before the onset follows at once"
    for _ in range(50):
        out += path.feed(silence).out
    assert out[-1] == ActivityEnd()


def test_quiet_caller_audio_waits_for_bigger_blocks_until_they_speak_and_again_once_answered():
    path = CallerAudioPath(CallConfig(caller_block_bytes=640, caller_quiet_block_bytes=3200))
    line_noise = encode_mulaw(bytes(np.random.default_rng(7).normal(0, 20, 160).astype("<i2").tobytes()))
    path.feed(line_noise)  # the resampler's first 4 ms (its delay) wait with the first frame
    path.feed(line_noise)
    quiet = [path.feed(line_noise, quiet_may_wait=True).out for _ in range(12)]
    assert [len(out) for out in quiet] == [0, 0, 0, 0, 1] * 2 + [0, 0], "one message per 100 ms of quiet"
    assert all(len(m.pcm16k) == 3200 for out in quiet for m in out)
    short_word = encode_mulaw((np.sin(np.arange(160) / 8000 * 2 * np.pi * 300) * 3000).astype("<i2").tobytes())
    (sent,) = path.feed(short_word, quiet_may_wait=True).out
    assert len(sent.pcm16k) == 3 * 640, "a loud frame goes at once, with the 40 ms that waited before it"
    owed = [path.feed(line_noise, quiet_may_wait=True).out for _ in range(6)]
    assert [len(out) for out in owed] == [1] * 6, "after a word (too short for voice detection): every 20 ms, it ends their turn"
    path.agent_answered()
    answered = [path.feed(line_noise, quiet_may_wait=True).out for _ in range(5)]
    assert [len(out) for out in answered] == [0, 0, 0, 0, 1], "the agent answers: quiet waits again"
    not_now = [path.feed(line_noise).out for _ in range(3)]
    assert [len(out) for out in not_now] == [1, 1, 1], "the core owes an answer: every 20 ms"
    total = sum(len(m.pcm16k) for out in (*quiet, [sent], *owed, *answered, *not_now) for m in out)
    assert total == 27 * 640, "nothing lost, nothing repeated"


def test_soft_speech_under_the_level_gate_goes_at_once_and_its_silence_then_ends_the_turn():
    """A word's soft beginning (below `QUIET_RMS`, where quiet may wait) after a line's digital
    silence is speech to the voice detection: it must not wait for a block, or Gemini hears
    the onset late."""
    path = CallerAudioPath(CallConfig(caller_block_bytes=640, caller_quiet_block_bytes=4000))
    line_noise = encode_mulaw(bytes(np.random.default_rng(7).normal(0, 20, 160).astype("<i2").tobytes()))
    path.feed(encode_mulaw(bytes(320)), quiet_may_wait=True)
    soft = [encode_mulaw((np.frombuffer(decode_mulaw(f), "<i2") // 10).astype("<i2").tobytes()) for f in speech_frames()[:60]]
    voice = path.voice
    assert voice is not None
    soft_speech_before_loud = 0
    loud_yet = False
    for frame in soft:
        sent = path.feed(frame, quiet_may_wait=True).out
        loud_yet = loud_yet or rms16(decode_mulaw(frame)) >= QUIET_RMS
        if voice.heard_speech:
            assert sent, "a frame of speech never waits"
            soft_speech_before_loud += not loud_yet
    assert soft_speech_before_loud > 0, "the fixture has speech under the level gate before anything loud"
    after = [path.feed(line_noise, quiet_may_wait=True).out for _ in range(5)]
    assert all(after), "they spoke: every 20 ms of their silence goes at once"


def test_quiet_that_waits_reaches_gemini_as_the_same_bytes_as_frame_by_frame():
    """Frames that wait for a block are levelled and resampled together (one call of each per
    block, not five): what Gemini hears must not change by a bit, gain control and resampler
    history included (a quiet caller, so the gain is far from unity)."""
    rng = np.random.default_rng(3)
    noise = [encode_mulaw(rng.normal(0, 20, 160).astype("<i2").tobytes()) for _ in range(23)]
    speech = [encode_mulaw((np.frombuffer(decode_mulaw(f), "<i2") // 8).astype("<i2").tobytes()) for f in speech_frames()[:40]]
    frames = noise[:11] + speech + noise[11:]

    def heard(config: CallConfig) -> bytes:
        path = CallerAudioPath(config)
        out = [m for f in frames for m in path.feed(f, quiet_may_wait=True).out]
        return b"".join(m.pcm16k for m in out if isinstance(m, CallerAudio))

    every_frame = heard(CallConfig(caller_block_bytes=640, caller_quiet_block_bytes=640))
    waited = heard(CallConfig(caller_block_bytes=640, caller_quiet_block_bytes=3200))
    assert len(every_frame) - len(waited) < 3200, "only the last block is still waiting"
    assert waited == every_frame[: len(waited)]
    assert CallerAudioPath(CallConfig()).to_gemini.level is not None


def test_quiet_blocks_off_every_frame_goes_alone():
    path = CallerAudioPath(CallConfig(caller_block_bytes=640, caller_quiet_block_bytes=640))
    silence = encode_mulaw(b"\x00\x00" * 160)
    path.feed(silence)  # the resampler's delay
    assert all(len(path.feed(silence, quiet_may_wait=True).out) == 1 for _ in range(10))


def test_audio_kernels_python_runs_the_python_gain_control_and_filters():
    # TELEPHONY_AUDIO_KERNELS=python: the way back from the C kernels, for a user who suspects them.
    path = CallerAudioPath(CallConfig(audio_in_python=True))
    assert path.to_gemini.level is not None and path.to_gemini.level.compiled is False
    assert CallerAudioPath(CallConfig()).to_gemini.level.compiled is COMPILED  # type: ignore[union-attr]


def test_serve_says_at_start_when_the_audio_runs_in_python():
    from telephony.cli.commands import audio_kernels_note
    from telephony.settings import Settings

    asked = audio_kernels_note(Settings(_env_file=None, audio_kernels="python"))
    assert asked is not None and "TELEPHONY_AUDIO_KERNELS=python" in asked
    default = audio_kernels_note(Settings(_env_file=None))
    assert (default is None) is COMPILED, "silent where the C kernels run; a hint to reinstall where they were not built"


def test_voice_detection_hears_the_same_whether_audio_comes_in_twilios_frames_or_in_odd_pieces():
    # Twilio's 20 ms frames take a short way through `CallerVoice.feed`; audio cut anywhere
    # else is joined into 20 ms frames first. Both must report the same onsets and ends.
    from telephony.call.voice_activity import CallerVoice

    pcm = b"".join(decode_mulaw(f) for f in speech_frames()[:150]) + bytes(320 * 40)

    def updates(piece: int) -> tuple[list[tuple[int, object]], int]:
        voice, seen, speech_frames_heard = CallerVoice(min_speech_ms=300, silence_ms=500), [], 0
        for start in range(0, len(pcm), piece):
            for update in voice.feed(pcm[start : start + piece]):
                seen.append(((start + piece) // 320, update))
            speech_frames_heard += voice.heard_speech
        return [u for _, u in seen], speech_frames_heard

    whole, heard = updates(320)
    assert any(u.started for u in whole) and any(u.ended for u in whole) and heard > 20, "the fixture has speech, then silence"
    assert updates(222)[0] == whole and updates(960)[0] == whole
