"""The test kit's own pieces that decide things: what the phone played between two times,
when a real model's reply counts as finished, what the emulated text model answers, how a
model script file is read. Pure, instant."""

import json

import pytest
from pydantic import BaseModel

from telephony.call.record import CallRecord, ToolRecord, TranscriptLine
from telephony.testing.model_script import ModelScriptError, ModelStep, load_model_script
from telephony.testing.phone_player import PhonePlayer
from telephony.testing.real_model import NO_REPLY_S, SETTLE_AFTER_TOOL_S, SETTLE_S, agent_acted, reply_settled
from telephony.testing.text_model import SchemaFiller


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_phone_plays_what_it_was_sent_at_its_pace_with_silence_between_and_nothing_after_a_clear():
    clock = Clock()
    player = PhonePlayer(clock, speed=1.0)
    player.audio(b"\x01" * 160)  # 0.00-0.02 s
    clock.now = 0.05
    player.audio(b"\x02" * 160)  # 0.05-0.07 s
    player.audio(b"\x03" * 160)  # queued: 0.07-0.09 s
    assert player.played_between(0.0, 0.04) == b"\x01" * 160 + b"\xff" * 160
    assert player.played_between(0.06, 0.08) == b"\x02" * 80 + b"\x03" * 80
    clock.now = 0.06
    player.clear()  # the caller barged in: the rest of the second frame and all of the third are gone
    assert player.played_between(0.05, 0.09) == b"\x02" * 80 + b"\xff" * 240


def record_with(lines: list[tuple[int, str, str]], tools: list[tuple[int, float]] = ()) -> CallRecord:
    record = CallRecord()
    record.transcript = [TranscriptLine(at_ms=at, speaker=who, text=text) for at, who, text in lines]
    record.tool_calls = [ToolRecord(name="t", arguments={}, response={}, at_ms=at, duration_ms=took) for at, took in tools]
    return record


def test_a_real_reply_is_finished_after_words_and_quiet_but_waits_longer_after_a_tool_result():
    spoke = record_with([(0, "caller", "hi"), (900, "agent", "Hello!")])
    assert agent_acted(spoke, 1, 0) == (True, False)
    assert not reply_settled(True, False, SETTLE_S - 0.1, 5) and reply_settled(True, False, SETTLE_S, 5)
    tool_then_silence = record_with([(0, "caller", "where is it?")], tools=[(800, 400.0)])
    assert agent_acted(tool_then_silence, 1, 0) == (True, True)
    assert not reply_settled(True, True, SETTLE_S, 5), "the model often pauses after a tool result"
    assert reply_settled(True, True, SETTLE_AFTER_TOOL_S, 9)
    words_after_tool = record_with([(0, "caller", "where?"), (2500, "agent", "Out for delivery.")], tools=[(800, 400.0)])
    assert agent_acted(words_after_tool, 1, 0) == (True, False)
    assert not reply_settled(False, False, 30, NO_REPLY_S - 1) and reply_settled(False, False, 30, NO_REPLY_S)


class Verdicts(BaseModel):
    class Verdict(BaseModel):
        criterion: str
        met: bool
        grade: int = 3

    verdicts: list[Verdict]
    summary: str


def test_the_emulated_text_model_fills_the_requested_schema_and_else_answers_text():
    schema = Verdicts.model_json_schema()
    answer = json.loads(SchemaFiller().answer("gemini-3.6-flash", {"generationConfig": {"responseJsonSchema": schema}}))
    assert Verdicts.model_validate(answer).verdicts[0].grade == 3
    assert "emulator" in SchemaFiller().answer("gemini-3.6-flash", {"contents": []})


def test_a_model_script_is_read_with_its_opening_and_a_bare_list_is_its_steps(tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text("opening: {say: Hello}\nsteps:\n  - {tool: find, args: {q: x}, say: Found.}\n")
    loaded = load_model_script(script)
    assert loaded.opening == ModelStep(say="Hello") and loaded.steps == (ModelStep(say="Found.", tool="find", args={"q": "x"}),)
    script.write_text("- say: One\n- say: Two\n")
    assert [step.say for step in load_model_script(script).steps] == ["One", "Two"]
    model = load_model_script(script).model()
    assert model.steps is not load_model_script(script).model().steps, "each call gets a script of its own"
    script.write_text("steps: []\n")
    with pytest.raises(ModelScriptError, match="no steps"):
        load_model_script(script)
