"""Answering machines on outbound calls: on Twilio's `AnsweredBy` the agent stops talking to the
greeting, waits for the beep (Twilio's, or ours when Twilio is unsure), leaves its message and
hangs up once it has been played; a human changes nothing; a fax or voicemail off hangs up."""

from __future__ import annotations

import numpy as np

from telephony.audio.mulaw import encode_mulaw
from telephony.call.core import CloseStream, SendTwilio
from telephony.call.rules import CallLimits
from telephony.call.voicemail_rules import VoicemailRules
from telephony.gemini.events import AgentAudio, TurnComplete
from telephony.gemini.messages import CallerAudio, RealtimeText
from telephony.testing.answering_machine import beep

from test_call_core import Script, agent_pcm, to_gemini


def nudges(actions: list[object]) -> list[str]:
    return [m.text for m in to_gemini(actions, RealtimeText)]


def says(script: Script, ms: int = 400) -> list[object]:
    actions = script.gemini(AgentAudio(agent_pcm(ms))) + script.gemini(TurnComplete())
    return actions + script.play_all_marks(actions)


def test_a_machine_after_its_beep_cuts_the_agent_off_gets_the_message_and_the_call_ends_when_it_is_heard():
    script = Script(voicemail=VoicemailRules(message="This is Maple Clinic, please call back."), idle_timeout_s=60.0)
    script.start()
    script.gemini(AgentAudio(agent_pcm(2000)))  # the agent greets the machine's greeting
    script.call.answered_by("machine_end_beep", script.now)
    actions = script.call.take_actions()
    assert any(isinstance(a, SendTwilio) and '"clear"' in a.text for a in actions), "the agent is cut off at once"
    assert nudges(actions) == [] and nudges(script.tick(0.7)) == [], "the model first closes the greeting's turn"
    (nudge,) = nudges(script.tick(0.15))
    assert 'say exactly: "This is Maple Clinic, please call back."' in nudge
    tone = encode_mulaw(beep(200).tobytes())
    sent = b"".join(m.pcm16k for i in range(0, len(tone), 160) for m in to_gemini(script.media(tone[i : i + 160]), CallerAudio))
    assert sent and not sent.strip(b"\0"), "the machine's audio no longer reaches the model"
    script.gemini(TurnComplete())  # the end of the cut-off greeting's turn
    actions = says(script, 1500)  # the message
    assert actions[-1] == CloseStream(1000, "call ended")
    record = script.call.record
    assert script.call.outcome == "voicemail" and record.end_reason == "voicemail left"
    assert record.answered_by == "machine_end_beep" and record.voicemail_left


def test_when_twilio_is_unsure_our_beep_detector_says_when_to_speak_or_the_wait_ends():
    script = Script(idle_timeout_s=60.0)
    script.start()
    script.call.answered_by("machine_end_other", script.now)
    assert nudges(script.call.take_actions()) == []
    greeting = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 180) * 6000).astype(np.int16)  # a voice, not a beep
    for i in range(0, 8000, 160):
        assert nudges(script.media(encode_mulaw(greeting[i : i + 160].tobytes()))) == []
    tone = beep(300)
    for i in range(0, len(tone), 160):
        script.media(encode_mulaw(tone[i : i + 160].tobytes()))
    assert script.call.voicemail.phase == "waiting_beep", "not on the beep: when it is over"
    script.media()  # the machine records
    assert script.call.voicemail.phase == "settling"
    (nudge,) = nudges(script.tick(0.8))
    assert "Leave a voicemail message" in nudge
    other = Script(idle_timeout_s=60.0)
    other.start()
    other.call.answered_by("machine_start", other.now)
    assert nudges(other.tick(5.9)) == [] and nudges(other.tick(0.2)) == [] and len(nudges(other.tick(0.8))) == 1, (
        "no beep: the message goes after the wait"
    )


def test_a_human_changes_nothing_and_a_fax_or_voicemail_off_ends_the_call():
    human = Script(idle_timeout_s=60.0)
    human.start()
    human.call.answered_by("human", human.now)
    assert human.call.take_actions() == [] and human.call.record.answered_by == "human"
    fax = Script()
    fax.start()
    fax.call.answered_by("fax", fax.now)
    assert isinstance(fax.call.take_actions()[-1], CloseStream) and fax.call.outcome == "fax"
    off = Script()
    off.start()
    off.call.use_limits(CallLimits(voicemail=VoicemailRules(off=True)), off.now)
    off.call.answered_by("machine_end_beep", off.now)
    assert isinstance(off.call.take_actions()[-1], CloseStream) and off.call.outcome == "machine"


def test_an_outbound_call_with_no_word_from_twilio_leaves_the_message_once_a_beep_has_ended():
    script = Script(idle_timeout_s=60.0)
    script.start(direction="outbound-api")
    voice = (np.sin(np.arange(16000) / 8000 * 2 * np.pi * 180) * 6000).astype(np.int16)  # the greeting
    tone = np.concatenate([voice, beep(400), np.zeros(320, dtype=np.int16)])
    phases = []
    for i in range(0, len(tone), 160):
        script.media(encode_mulaw(tone[i : i + 160].tobytes()))
        phases.append(script.call.voicemail.phase)
    assert phases.index("settling") == (16000 + 3200) // 160, "on the first frame after the beep"
    assert len(nudges(script.tick(0.8))) == 1 and script.call.record.answered_by == "machine_beep_heard"
    unknown = Script(idle_timeout_s=60.0)
    unknown.start(direction="outbound-api")
    unknown.call.answered_by("unknown", unknown.now)
    for i in range(0, len(tone), 160):
        unknown.media(encode_mulaw(tone[i : i + 160].tobytes()))
    assert len(nudges(unknown.tick(0.8))) == 1, "Twilio unsure: the beep still says it"


def test_a_person_known_as_one_is_never_taken_for_a_machine_by_a_tone():
    person = Script(idle_timeout_s=60.0)
    person.start(direction="outbound-api")
    person.call.answered_by("human", person.now)
    tone = np.concatenate([beep(400), np.zeros(320, dtype=np.int16)])  # a tone on their line (a phone's own beep)
    assert all(nudges(person.media(encode_mulaw(tone[i : i + 160].tobytes()))) == [] for i in range(0, len(tone), 160))
    inbound = Script(idle_timeout_s=60.0)
    inbound.start()  # an incoming call never listens for a beep
    assert all(nudges(inbound.media(encode_mulaw(tone[i : i + 160].tobytes()))) == [] for i in range(0, len(tone), 160))
