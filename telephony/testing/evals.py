"""`telephony eval FILE.yaml`: scenarios for your agent, each run N times over the phone path,
scored, and reported (a table, JSON, an exit code).

    scenarios:
      - name: books a Friday slot
        caller: ["Hello, I'd like an appointment.", "Friday, please."]
        model:                        # offline only: what the emulated model does per caller turn
          - say: Which day suits you?
          - {tool: free_slots, args: {day: friday}, say: On Friday I have nine or half past eleven.}
        expect:
          tools: [{name: free_slots, args: {day: friday}}]   # called, with at least these arguments
          says: [half past eleven]                           # offline: words the agent said
          max_response_ms: 1500                              # end of the caller's speech -> first agent audio

Offline (`--emulate-gemini`) each run is a `Conversation` with the Gemini emulator following
`model`; latency is measured at the Twilio emulator, in call time.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from telephony.testing.conversation import AgentTurn, Conversation
from telephony.testing.judge import Verdict, judge_said
from telephony.testing.model_script import StepSpec
from telephony.testing.yaml_files import YamlFileError, load_validated


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolExpectation(_Strict):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    """A subset: the call had at least these arguments, with these values."""


class Expectations(_Strict):
    tools: list[ToolExpectation] = Field(default_factory=list)
    says: list[str] = Field(default_factory=list)
    max_response_ms: float | None = Field(default=None, gt=0)


class Scenario(_Strict):
    name: str
    caller: list[str] = Field(default_factory=list)
    persona: str | None = None
    model: list[StepSpec] = Field(default_factory=list)
    expect: Expectations = Field(default_factory=Expectations)

    @field_validator("caller", mode="before")
    @classmethod
    def _lines(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _someone_calls(self) -> Scenario:
        if not self.caller and not self.persona:
            raise ValueError("needs `caller` (the caller's lines) or a `persona`")
        return self


class EvalFile(_Strict):
    scenarios: list[Scenario] = Field(min_length=1)


class EvalFileError(YamlFileError):
    """A mistake in an eval file, as one line: the file, the scenario and the key."""


def load_eval_file(path: Path) -> list[Scenario]:
    return load_validated(path, EvalFile, "scenarios", "scenario", EvalFileError, "`scenarios:` with a list of scenarios").scenarios


@dataclass
class RunResult:
    """One run of one scenario."""

    passed: bool
    failures: list[str]
    response_ms: list[float]
    tools_expected: int
    tools_matched: int
    transcript: list[tuple[str, str]]
    cost_usd: float | None = None
    call_sid: str | None = None


@dataclass
class ScenarioReport:
    name: str
    runs: list[RunResult] = field(default_factory=list)

    @property
    def pass_rate(self) -> float:
        return sum(run.passed for run in self.runs) / len(self.runs) if self.runs else 0.0

    @property
    def tool_accuracy(self) -> float | None:
        expected = sum(run.tools_expected for run in self.runs)
        return sum(run.tools_matched for run in self.runs) / expected if expected else None

    def latency_ms(self, quantile: float) -> float | None:
        values = sorted(ms for run in self.runs for ms in run.response_ms)
        if not values:
            return None
        if len(values) == 1:
            return values[0]
        return statistics.quantiles(values, n=100, method="inclusive")[round(quantile * 100) - 1]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pass_rate": self.pass_rate,
            "tool_accuracy": self.tool_accuracy,
            "response_ms_p50": self.latency_ms(0.5),
            "response_ms_p95": self.latency_ms(0.95),
            "runs": [run.__dict__ for run in self.runs],
        }


def judge(
    scenario: Scenario, turns: list[AgentTurn], transcript: list[tuple[str, str]], verdicts: list[Verdict] | None = None
) -> tuple[list[str], int]:
    """What failed (with the transcript excerpt that shows it), and how many expected tool
    calls were made as expected. `verdicts`: the judge model's, for `says` against the real
    model (offline, `says` are words the agent said)."""
    failures: list[str] = []
    calls = [call for turn in turns for call in turn.tool_calls]
    matched = 0
    for want in scenario.expect.tools:
        named = [call for call in calls if call.name == want.name]
        if any(all(call.arguments.get(k) == v for k, v in want.args.items()) for call in named):
            matched += 1
        elif named:
            failures.append(f"tool {want.name} was called with {named[0].arguments}, not with {want.args}")
        else:
            made = ", ".join(call.name for call in calls) or "none"
            failures.append(f"tool {want.name} was never called (calls made: {made})")
    said = " ".join(text for speaker, text in transcript if speaker == "agent") or " ".join(turn.said for turn in turns)
    excerpt = said[-200:] or "(the agent said nothing)"
    if verdicts is not None:
        failures += [f"not met: {v.criterion} ({v.reason}); the agent said: {excerpt!r}" for v in verdicts if not v.met]
    else:
        failures += [
            f"the agent never said {words!r}; it said: {excerpt!r}" for words in scenario.expect.says if words.lower() not in said.lower()
        ]
    limit = scenario.expect.max_response_ms
    slow = [ms for turn in turns if (ms := turn.response_ms) is not None and limit is not None and ms > limit]
    if slow:
        failures.append(f"a response took {max(slow):.0f} ms, over the {limit:.0f} ms allowed")
    return failures, matched


@dataclass
class EvalOptions:
    """How scenarios run. `server`: `Settings` fields for the server under test (where the
    runs are kept: `database_url`, `record_audio`, `recordings_dir`)."""

    runs: int = 1
    real: bool = False
    speed: float = 8.0
    server: dict[str, Any] = field(default_factory=dict)
    max_turns: int = 8
    """A simulated caller's most turns."""
    max_seconds: float = 120.0
    """A simulated caller's longest call (call seconds)."""
    source: str = ""
    """The eval file, kept with each run in the call history."""


async def run_evals(
    scenarios: list[Scenario], agent: Any, options: EvalOptions, on_run: Callable[[str, int], None] | None = None
) -> list[ScenarioReport]:
    """Every scenario `options.runs` times: offline against the Gemini emulator (which
    follows `model`), or against the real model with `says` judged by a Gemini text model."""
    reports = []
    for scenario in scenarios:
        report = ScenarioReport(scenario.name)
        for number in range(options.runs):
            report.runs.append(await _run_once(scenario, agent, options, number))
            if on_run is not None:
                on_run(scenario.name, number)
        reports.append(report)
    return reports


async def run_offline(
    scenarios: list[Scenario], agent: Any, *, runs: int = 1, speed: float = 8.0, on_run: Callable[[str, int], None] | None = None
) -> list[ScenarioReport]:
    """Every scenario `runs` times against the Gemini emulator (which follows `model`)."""
    return await run_evals(scenarios, agent, EvalOptions(runs=runs, speed=speed), on_run)


async def _run_once(scenario: Scenario, agent: Any, options: EvalOptions, number: int) -> RunResult:
    from telephony.gemini.pricing import estimated_cost_usd

    steps = [s.step() for s in scenario.model]
    turns: list[AgentTurn] = []
    verdicts: list[Verdict] | None = None
    async with Conversation(agent, steps, speed=options.speed, real=options.real, direction="eval", **options.server) as call:
        if scenario.caller and not (options.real and scenario.persona):  # offline, a persona's scenario plays its lines
            for line in scenario.caller:
                if call.ended:
                    break
                turns.append(await call.caller(line))
        else:
            from telephony.testing.simulated_caller import simulated_caller

            turns = await simulated_caller(call, scenario.persona or "", max_turns=options.max_turns, max_seconds=options.max_seconds)
        record = await call.hang_up()
        transcript = call.transcript
        if options.real and scenario.expect.says:
            verdicts = await judge_said(call.server_settings, transcript, scenario.expect.says)
    failures, matched = judge(scenario, turns, transcript, verdicts)
    result = RunResult(
        passed=not failures,
        failures=failures,
        response_ms=[ms for turn in turns if (ms := turn.response_ms) is not None],
        tools_expected=len(scenario.expect.tools),
        tools_matched=matched,
        transcript=transcript,
        cost_usd=estimated_cost_usd(record.usage) if record is not None else None,
        call_sid=record.call_sid if record is not None else None,
    )
    url = options.server.get("database_url")
    if url and url != "off" and result.call_sid:
        await _keep_verdict(url, result, scenario, options, number, verdicts)
    return result


async def _keep_verdict(
    url: str, result: RunResult, scenario: Scenario, options: EvalOptions, number: int, verdicts: list[Verdict] | None
) -> None:
    """The run's verdict beside its call in the history (the dashboard shows it)."""
    from telephony.store import CallStore

    store = CallStore(url)
    try:
        entry = {
            "file": options.source,
            "scenario": scenario.name,
            "run": number + 1,
            "model": "real" if options.real else "emulated",
            "passed": result.passed,
            "failures": result.failures,
            "verdicts": [v.model_dump() for v in verdicts or []],
        }
        assert result.call_sid is not None
        await store.annotate(result.call_sid, "eval", entry)
    finally:
        await store.close()
