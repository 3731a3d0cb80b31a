"""Conversation tests against the real model (TELEPHONY_TEST_REAL_GEMINI=1): the emulator
stands in for Gemini here, reached as the real service is (credentials and endpoint from the
environment), so the real-model path runs offline: no script, waiting for a model that does
not say when it is done, and a judge model for what the agent said."""

import pytest

from telephony.testing import Conversation, ModelStep
from telephony.testing.caller_speech import speech_like_24k
from telephony.testing.gemini_live import EmulatedToolCall, GeminiLiveEmulator, Reply, ScriptedAgent
from telephony.testing.real_model import RealModelUnavailable
from telephony.testing.text_model import prompt_text

from helpers.agents import FirstWordJudge, parcel_agent


@pytest.fixture
def real_model_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env file of the developer's
    monkeypatch.setenv("TELEPHONY_TEST_REAL_GEMINI", "1")
    for name in ("GEMINI_API_KEY", "TELEPHONY_VERTEX_PROJECT", "TELEPHONY_GEMINI_BASE_URL", "TELEPHONY_GEMINI_CA_FILE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def test_without_credentials_a_real_model_run_says_what_is_missing_in_one_line(real_model_env):
    with pytest.raises(RealModelUnavailable, match="needs Gemini credentials: set GEMINI_API_KEY") as caught:
        async with Conversation(parcel_agent()):
            pass
    assert "\n" not in str(caught.value)


async def test_the_real_model_is_waited_for_through_a_tool_and_its_words_are_judged(real_model_env):
    # The "real" model answers after a tool call with a pause, as native-audio models do; the
    # test's own model steps are not used.
    words = "Your parcel is out for delivery today."
    reply = Reply(speech_like_24k(words), words, (EmulatedToolCall("track", {"number": "SP123"}),), speech_delay_s=2.0)
    model = ScriptedAgent([reply])
    async with GeminiLiveEmulator(model, text_model=FirstWordJudge()) as gemini:
        real_model_env.setenv("GEMINI_API_KEY", "offline")
        real_model_env.setenv("TELEPHONY_GEMINI_BASE_URL", gemini.base_url)
        real_model_env.setenv("TELEPHONY_GEMINI_CA_FILE", str(gemini.ca_file))
        async with Conversation(parcel_agent(), [ModelStep(say="never said: the script is ignored")]) as call:
            turn = await call.caller("Where is my parcel? The number is S P 1 2 3.")
            await call.expect_said("delivery is mentioned")
            with pytest.raises(AssertionError, match=r"not met: card number is read out \(the agent said: .*your parcel is"):
                await call.expect_said("card number is read out")
    assert call.real and call.speed == 1.0
    assert [(t.name, t.arguments) for t in turn.tool_calls] == [("track", {"number": "SP123"})]
    assert turn.tool_calls[0].response == {"number": "SP123", "status": "out for delivery"}
    assert turn.said.endswith("Your parcel is out for delivery today."), "the words after the tool's pause were waited for"
    assert turn.response_ms is not None
    (first, second) = [prompt_text(request) for request in gemini.text_requests]
    assert "CALLER:" in first and "AGENT: Your parcel is out for delivery today." in first
