"""The model families as plain rules: what each setup carries, how tools are declared, what a
tool result says, how a server message becomes events. Instant: no sockets."""

from __future__ import annotations

import pytest
from google.genai import types

from telephony import Agent
from telephony.agents.loading import agent_model_problems
from telephony.gemini.config import AgentOptions, build_live_config, declarations_for
from telephony.gemini.events import GenerationComplete, TurnComplete, Usage, VoiceActivity
from telephony.gemini.models import Family, ThinkingLevel, ToolBehavior, family_of, model_problem, model_warning
from telephony.gemini.receive import events_from_message
from telephony.gemini.tool_results import for_model

ET = "gemini-3.8-live-extended-thinking"


def options(model: str, **changes) -> AgentOptions:
    tools = (
        types.FunctionDeclaration(name="end_call", description="Hang up.", behavior=types.Behavior.BLOCKING),
        types.FunctionDeclaration(name="find_order", description="Find an order."),
    )
    return AgentOptions(model=model, voice="Kore", instructions="Be brief.", tools=tools).with_overrides(**changes)


@pytest.mark.parametrize(
    "model,family",
    [
        ("gemini-3.8-live", Family.LIVE_38),
        ("models/gemini-3.8-live", Family.LIVE_38),
        ("publishers/google/models/gemini-3.8-live", Family.LIVE_38),
        (ET, Family.LIVE_38_THINKING),
        ("gemini-3.1-flash-live-preview", Family.FLASH_LIVE_31),
        ("gemini-2.5-flash-native-audio-preview-12-2025", Family.NATIVE_AUDIO_25),
        ("gemini-live-2.5-flash-native-audio", Family.NATIVE_AUDIO_25),
        ("gemini-4.0-live", Family.LIVE_38),  # unknown: the newest family's rules
        ("gemini-4.0-live-extended-thinking", Family.LIVE_38_THINKING),
    ],
)
def test_every_model_id_belongs_to_a_family(model, family):
    assert family_of(model) is family


def test_bad_model_ids_are_one_line_naming_the_right_one():
    assert model_problem("gemini-3.8-live", vertex=True) is None and model_problem("gemini-3.8-live", vertex=False) is None
    assert model_problem(ET, vertex=True) == f"{ET!r} is not served on Vertex AI; on Vertex AI use 'gemini-3.8-live'"
    assert "shut down on 2025-12-09" in (model_problem("gemini-live-2.5-flash-preview", vertex=False) or "")
    assert model_problem("gemini-4.0-live", vertex=False) is None
    assert "not one we know" in (model_warning("gemini-4.0-live") or "")
    assert model_warning("gemini-3.8-live") is None


def test_each_family_declares_tools_as_it_must():
    def behaviors(model: str) -> dict[str, str | None]:
        return {str(d.name): d.behavior.value if d.behavior else None for d in declarations_for(options(model))}

    assert behaviors("gemini-3.8-live") == {"end_call": "BLOCKING", "find_order": "NON_BLOCKING"}, "3.8: stated, never left to default"
    assert behaviors("gemini-2.5-flash-native-audio-preview-12-2025") == {"end_call": "BLOCKING", "find_order": "BLOCKING"}
    assert behaviors(ET) == {"end_call": "NON_BLOCKING", "find_order": "NON_BLOCKING"}, "ET refuses BLOCKING"
    assert behaviors("gemini-3.1-flash-live-preview") == {"end_call": None, "find_order": None}, "3.1 takes no behavior"
    assert options("gemini-3.8-live").tool_behavior("find_order") is ToolBehavior.NON_BLOCKING


def test_each_family_gets_only_the_setup_fields_it_takes():
    live = build_live_config(options("gemini-3.8-live", language_code="fr-FR"))
    assert live.thinking_config is None and live.history_config is None
    assert live.speech_config is not None and live.speech_config.language_code is None, "native audio takes no languageCode"
    text = live.system_instruction.parts[0].text  # type: ignore[union-attr,index]
    assert text.startswith("Be brief.") and "French (fr-FR)" in text and "two function calls" in text
    thinking = build_live_config(options(ET, thinking_level=ThinkingLevel.HIGH), seed_history=True)
    assert thinking.thinking_config is not None and thinking.thinking_config.thinking_level == types.ThinkingLevel.HIGH
    assert thinking.history_config is not None and thinking.history_config.initial_history_in_client_content
    old = build_live_config(options("gemini-2.5-flash-native-audio-preview-12-2025"), seed_history=True)
    assert old.history_config is None, "2.5 is seeded with plain client content"
    assert "two function calls" not in old.system_instruction.parts[0].text  # type: ignore[union-attr,index]
    for config in (live, thinking, old):
        assert config.enable_affective_dialog is None and config.proactivity is None


@pytest.mark.parametrize(
    "tool_said,model_gets",
    [
        ({"result": ["09:00"]}, {"result": ["09:00"], "status": "ok", "retryable": False}),
        ({"result": []}, {"result": [], "status": "no_results", "retryable": False}),
        ({"result": None}, {"result": None, "status": "no_results", "retryable": False}),
        ({}, {"status": "no_results", "retryable": False}),
        ({"error": "boom"}, {"error": "boom", "status": "error", "retryable": False, "message": "boom"}),
        ({"state": "shipped", "status": "ok"}, {"state": "shipped", "status": "ok", "retryable": False}),
    ],
)
def test_every_tool_result_says_what_happened(tool_said, model_gets):
    got = for_model(tool_said)
    if got["status"] == "no_results":
        assert "calling again" in got.pop("message")
    assert got == model_gets


def test_a_blocking_tool_on_extended_thinking_is_refused_naming_it():
    with pytest.raises(ValueError, match="tool 'book' is declared blocking"):
        agent = Agent("desk", model=ET)
        agent.tool(behavior="blocking")(book)
    agent = Agent("desk")
    agent.tool(behavior="blocking")(book)
    assert agent_model_problems(agent, "gemini-3.8-live") == []
    (problem,) = agent_model_problems(agent, ET)
    assert problem.startswith("agent 'desk': tool 'book' is declared blocking")
    with pytest.raises(ValueError, match="behavior 'sometimes': choose one of blocking, non_blocking"):
        agent.tool(name="other", behavior="sometimes")(book)
    with pytest.raises(ValueError, match="was shut down"):
        Agent("old", model="gemini-2.0-flash-live-001")


def book(slot: str) -> str:
    """Book a slot."""
    return slot


def test_a_split_turn_and_the_new_server_fields_become_events():
    message = types.LiveServerMessage.model_validate(
        {
            "serverContent": {
                "modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "AAAA"}}]},
                "outputTranscription": {"text": "One moment."},
                "generationComplete": True,
                "turnComplete": True,
                "interactionStatus": "IN_PROGRESS",
                "turnCompleteReason": "GENERATED_AUDIO_SAFETY",
            },
            "voiceActivity": {"voiceActivityType": "ACTIVITY_END"},
            "usageMetadata": {"totalTokenCount": 9, "thoughtsTokenCount": 4},
        }
    )
    events = events_from_message(message)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["VoiceActivity", "AgentAudio", "OutputTranscript", "GenerationComplete", "TurnComplete", "Usage"]
    assert events[0] == VoiceActivity(started=False) and isinstance(events[3], GenerationComplete)
    turn = events[4]
    assert isinstance(turn, TurnComplete) and not turn.final and turn.unusual_reason == "GENERATED_AUDIO_SAFETY"
    assert TurnComplete(interaction_status="IDLE").final and TurnComplete().final
    usage = events[5]
    assert isinstance(usage, Usage) and usage.thoughts_tokens == 4
