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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from telephony.testing.conversation import AgentTurn, Conversation
from telephony.testing.model_script import StepSpec
from telephony.testing.yaml_files import YamlFileError, one_line, read_yaml


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
    try:
        data = read_yaml(path)
    except YamlFileError as exc:
        raise EvalFileError(str(exc)) from None
    if isinstance(data, list):
        data = {"scenarios": data}
    if not isinstance(data, dict):
        raise EvalFileError(f"{path}: expected `scenarios:` with a list of scenarios")
    try:
        return EvalFile.model_validate(data).scenarios
    except ValidationError as exc:
        raise EvalFileError(one_line(path, exc, data, "scenarios", "scenario")) from None


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


def judge(scenario: Scenario, turns: list[AgentTurn], transcript: list[tuple[str, str]]) -> tuple[list[str], int]:
    """What failed (with the transcript excerpt that shows it), and how many expected tool
    calls were made as expected."""
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
    said = " ".join(turn.said for turn in turns)
    for words in scenario.expect.says:
        if words.lower() not in said.lower():
            excerpt = said[-200:] or "(the agent said nothing)"
            failures.append(f"the agent never said {words!r}; it said: {excerpt!r}")
    limit = scenario.expect.max_response_ms
    slow = [ms for turn in turns if (ms := turn.response_ms) is not None and limit is not None and ms > limit]
    if slow:
        failures.append(f"a response took {max(slow):.0f} ms, over the {limit:.0f} ms allowed")
    return failures, matched


async def run_offline(
    scenarios: list[Scenario],
    agent: Any,
    *,
    runs: int = 1,
    speed: float = 8.0,
    on_run: Callable[[str, int], None] | None = None,
) -> list[ScenarioReport]:
    """Every scenario `runs` times against the Gemini emulator (which follows `model`)."""
    reports = []
    for scenario in scenarios:
        report = ScenarioReport(scenario.name)
        steps = [s.step() for s in scenario.model]
        for number in range(runs):
            turns: list[AgentTurn] = []
            async with Conversation(agent, steps, speed=speed) as call:
                for line in scenario.caller:
                    if call.ended:
                        break
                    turns.append(await call.caller(line))
                await call.hang_up()
                transcript = call.transcript
            failures, matched = judge(scenario, turns, transcript)
            report.runs.append(
                RunResult(
                    passed=not failures,
                    failures=failures,
                    response_ms=[ms for turn in turns if (ms := turn.response_ms) is not None],
                    tools_expected=len(scenario.expect.tools),
                    tools_matched=matched,
                    transcript=transcript,
                )
            )
            if on_run is not None:
                on_run(scenario.name, number)
        reports.append(report)
    return reports
