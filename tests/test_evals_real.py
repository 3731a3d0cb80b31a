"""`telephony eval` against the real model: the emulator stands in for Gemini Live and its
judge, reached as the real service is, so the real-model path (no script, judged `says`,
a persona's simulated caller, verdicts in the history) runs offline."""

import itertools
import json
import sqlite3

import pytest
from typer.testing import CliRunner

from telephony.cli import app
from telephony.testing.caller_speech import speech_like_24k
from telephony.testing.evals import EvalOptions, Scenario, run_evals
from telephony.testing.gemini_live import EmulatedToolCall, GeminiLiveEmulator, Reply, ScriptedAgent
from telephony.testing.text_model import prompt_text

from helpers.agents import FirstWordJudge, parcel_agent


def minds():
    """The agent's session first (it opens with the call), then the persona's."""
    agent_words = "Your parcel is out for delivery."
    agent = ScriptedAgent([Reply(speech_like_24k(agent_words), agent_words, (EmulatedToolCall("track", {"number": "SP123"}),))])
    caller_words = "Hello, where is my parcel? The number is S P 1 2 3."
    persona = ScriptedAgent([Reply(speech_like_24k(caller_words), caller_words, speech_delay_s=0.0)], respond_to_text=True)
    order = itertools.chain([agent, persona], itertools.repeat(ScriptedAgent([])))
    return lambda: next(order)


@pytest.fixture
def real_gemini(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEPHONY_TEST_REAL_GEMINI", "1")
    for name in ("GEMINI_API_KEY", "TELEPHONY_VERTEX_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def test_a_persona_calls_the_agent_and_the_judge_scores_the_run_which_the_history_keeps(real_gemini, tmp_path):
    scenario = Scenario.model_validate(
        {
            "name": "tracks a parcel",
            "persona": "You are Ada. Your parcel SP123 has not arrived; you want to know where it is.",
            "expect": {"tools": [{"name": "track", "args": {"number": "SP123"}}], "says": ["delivery status given", "refund offered"]},
        }
    )
    history = f"sqlite:///{tmp_path / 'history.db'}"
    async with GeminiLiveEmulator(minds(), text_model=FirstWordJudge()) as gemini:
        real_gemini.setenv("GEMINI_API_KEY", "offline")
        real_gemini.setenv("TELEPHONY_GEMINI_BASE_URL", gemini.base_url)
        real_gemini.setenv("TELEPHONY_GEMINI_CA_FILE", str(gemini.ca_file))
        options = EvalOptions(real=True, max_turns=1, max_seconds=60, server={"database_url": history}, source="parcels.yaml")
        (report,) = await run_evals([scenario], parcel_agent(), options)
    (run,) = report.runs
    assert len(gemini.connections) == 2, "the agent's session and the simulated caller's"
    assert report.tool_accuracy == 1.0, run.failures
    (failure,) = run.failures  # the judge's reason, then what the agent said
    assert failure.startswith("not met: refund offered (the agent said: ") and failure.endswith("Your parcel is out for delivery.'")
    assert run.response_ms and run.response_ms[0] > 0, "latency from the end of the persona's speech"
    judge_prompt = prompt_text(gemini.text_requests[0])
    assert "AGENT: Your parcel is out for delivery." in judge_prompt and "CALLER:" in judge_prompt
    with sqlite3.connect(tmp_path / "history.db") as db:
        ((direction, summary),) = db.execute("SELECT direction, summary FROM calls").fetchall()
    kept = json.loads(summary)["eval"]
    assert direction == "eval" and kept["model"] == "real" and kept["passed"] is False
    assert [v["met"] for v in kept["verdicts"]] == [True, False]


def test_an_eval_against_the_real_model_without_credentials_is_one_line_exit_2(real_gemini, tmp_path):
    (tmp_path / "evals.yaml").write_text("scenarios:\n  - name: hello\n    caller: [Hello]\n")
    done = CliRunner().invoke(app, ["eval", "evals.yaml", "--agent", "nowhere.py:agent"], env={"GEMINI_API_KEY": ""})
    assert done.exit_code == 2, done.output
    assert "needs GEMINI_API_KEY" in done.output and "--emulate-gemini" in done.output
    assert len(done.output.strip().splitlines()) == 1, done.output


def test_an_offline_eval_of_a_persona_scenario_says_it_needs_the_real_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evals.yaml").write_text("scenarios:\n  - name: angry caller\n    persona: You are angry.\n")
    done = CliRunner().invoke(app, ["eval", "evals.yaml", "--agent", "x.py:agent", "--emulate-gemini"])
    assert done.exit_code == 2 and "a simulated caller needs the real model" in done.output, done.output
