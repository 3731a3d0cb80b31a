"""A silent caller, in the call core (no sockets): checked on after the reprompt time, said
goodbye to after the hang-up time, the call then ends with reason `silence`; never while the
agent talks or a tool runs; speech or a key starts it over. And the time limit's notice."""

from __future__ import annotations

from telephony.call.core import CloseStream, RunTool, SendGemini
from telephony.call.nudges import SILENCE_CHECK_IN, SILENCE_GOODBYE, TIME_NOTICE
from telephony.call.rules import CallLimits
from telephony.call.silence import SilenceRules
from telephony.gemini.events import AgentAudio, ToolCall, TurnComplete
from telephony.gemini.messages import RealtimeText

from test_call_core import Script, agent_pcm, marks, speech_frames, to_gemini

QUICK = SilenceRules(reprompt_s=10.0, hang_up_s=10.0, goodbye_max_s=8.0)


def nudges(actions: list[object]) -> list[str]:
    return [m.text for m in to_gemini(actions, RealtimeText)]


def agent_says(script: Script, ms: int = 400) -> list[object]:
    """A whole reply: audio, turn complete, played at Twilio (every mark echoed)."""
    actions = script.gemini(AgentAudio(agent_pcm(ms)))
    actions += script.gemini(TurnComplete())
    return actions + script.play_all_marks(actions)


def quiet(script: Script, seconds: float) -> list[object]:
    """The caller's line: silence frames for `seconds`, with the core's ticks; Twilio echoes
    the marks of whatever it was sent (a hold tone)."""
    actions: list[object] = []
    echo_next: list[str] = []
    for _ in range(int(seconds / 0.5)):
        step: list[object] = []
        for name in echo_next:  # what was sent half a second ago has played
            step += script.mark(name)
        for _ in range(25):
            step += script.media()
        step += script.tick(0.0)
        echo_next = marks(step)
        actions += step
    for name in echo_next:
        actions += script.mark(name)
    return actions


def test_a_silent_caller_is_checked_on_then_said_goodbye_to_and_the_call_ends_for_silence():
    script = Script(silence=QUICK, idle_timeout_s=60.0)
    script.start()
    agent_says(script)  # the greeting
    assert nudges(quiet(script, 9.5)) == []
    assert nudges(quiet(script, 1.0)) == [SILENCE_CHECK_IN]
    agent_says(script)  # "Are you still there?"
    assert nudges(quiet(script, 9.5)) == []
    assert nudges(quiet(script, 1.0)) == [SILENCE_GOODBYE]
    assert script.call.state.value == "active", "the goodbye is heard first"
    actions = agent_says(script)  # "Goodbye!"
    assert actions[-1] == CloseStream(1000, "call ended")
    assert script.call.outcome == "silence" and "said nothing" in script.call.record.end_reason


def test_a_model_that_never_says_its_goodbye_does_not_keep_the_call():
    script = Script(silence=QUICK, idle_timeout_s=60.0)
    script.start()
    quiet(script, 10.5)
    quiet(script, 10.5)  # no check-in spoken: the count went on
    actions = quiet(script, 8.5)
    assert any(isinstance(a, CloseStream) for a in actions) and script.call.outcome == "silence"


def test_a_caller_silent_while_a_15_s_tool_runs_is_not_checked_on():
    script = Script(silence=QUICK, idle_timeout_s=60.0, hold_after_s=0.0)  # no hold tone: the silence is all there is
    script.start()
    agent_says(script)
    call = ToolCall("t1", "look_up", {})
    assert any(isinstance(a, RunTool) for a in script.gemini(call))
    assert nudges(quiet(script, 15.0)) == []
    script.call.tool_finished(call, {"result": "found"}, script.now)
    assert nudges(quiet(script, 5.0)) == [], "the model answers next: not the caller's turn"
    agent_says(script)  # "I found it."
    assert nudges(quiet(script, 10.5)) == [SILENCE_CHECK_IN]


def test_speech_or_a_key_starts_the_count_over():
    script = Script(silence=QUICK, idle_timeout_s=60.0)
    script.start()
    agent_says(script)
    quiet(script, 8.0)
    for frame in speech_frames()[:60]:  # 1.2 s of real speech
        script.media(frame)
    agent_says(script)  # the reply
    assert nudges(quiet(script, 9.0)) == []
    script.dtmf("5")
    agent_says(script)
    assert nudges(quiet(script, 9.0)) == []
    assert nudges(quiet(script, 1.5)) == [SILENCE_CHECK_IN]


def test_an_agents_own_limits_win_and_zero_turns_the_check_in_off():
    script = Script(silence=QUICK, idle_timeout_s=60.0)
    script.start()
    script.call.use_limits(CallLimits(silence_reprompt_s=0), script.now)
    agent_says(script)
    assert nudges(quiet(script, 30.0)) == []


def test_the_model_is_told_a_minute_before_the_time_limit_then_the_call_ends_politely():
    script = Script(silence=SilenceRules(reprompt_s=0), max_call_s=1800.0, idle_timeout_s=4000.0)
    script.start()
    script.call.use_limits(CallLimits(max_call_s=180.0), script.now)
    assert nudges(script.tick(119.0)) == []
    assert nudges(script.tick(1.5)) == [TIME_NOTICE]
    assert nudges(script.tick(30.0)) == [], "told once"
    actions = script.tick(30.0)
    assert script.call.outcome == "time_limit" and not any(isinstance(a, SendGemini) for a in actions)
