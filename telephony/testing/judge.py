"""Judging what an agent said against criteria written in a test ("asks for the tracking
number", "does not read out the card number"), with a Gemini text model and structured output.

Against the real model an agent's words differ on every run, so a substring check cannot tell
a good reply from a bad one; a judge model can. Each criterion gets a verdict (met or not) and
a one-sentence reason that a failing test prints. The judge sees the whole call's transcript,
so "does not ..." criteria are judged over everything the agent said.

The judge model is `TELEPHONY_JUDGE_MODEL` (default `gemini-3.6-flash`); it uses the same
credentials and endpoint as the Live model (`GEMINI_API_KEY` or Vertex AI,
`TELEPHONY_GEMINI_BASE_URL`, `TELEPHONY_GEMINI_CA_FILE`). The Gemini emulator answers judge
requests offline (`GeminiLiveEmulator(text_model=...)`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError

if TYPE_CHECKING:
    from google import genai

    from telephony.settings import Settings

DEFAULT_JUDGE_MODEL = "gemini-3.6-flash"

INSTRUCTIONS = """You judge a phone call between a caller and a voice agent of a business.
For each numbered criterion, decide whether the AGENT's behaviour in the transcript meets it.
A criterion that is a bare phrase is met when the agent said it or something that means the same.
Judge only from the transcript; transcripts of speech have small recognition errors, ignore them.
Answer with one verdict per criterion, in order, each with a one-sentence reason quoting the agent."""


class Verdict(BaseModel):
    criterion: str
    met: bool
    reason: str = ""


class _Verdicts(BaseModel):
    verdicts: list[Verdict] = Field(default_factory=list)


class JudgeError(RuntimeError):
    """The judge could not answer (no credentials, the service failed, a malformed answer)."""


def judge_model_name() -> str:
    return os.environ.get("TELEPHONY_JUDGE_MODEL") or DEFAULT_JUDGE_MODEL


def text_client(settings: Settings) -> genai.Client:
    """A generateContent client with the Live model's credentials and endpoint."""
    from telephony.web.composition import text_client_from

    try:
        return text_client_from(settings)
    except ValueError:
        raise JudgeError("the judge needs Gemini credentials: GEMINI_API_KEY, or a Vertex AI project") from None


def transcript_text(transcript: Sequence[tuple[str, str]]) -> str:
    return "\n".join(f"{speaker.upper()}: {text}" for speaker, text in transcript if text)


async def judge_said(settings: Settings, transcript: Sequence[tuple[str, str]], criteria: Sequence[str]) -> list[Verdict]:
    """One verdict per criterion, in order."""
    if not criteria:
        return []
    from google.genai import types

    client = text_client(settings)
    listed = "\n".join(f"{n}. {criterion}" for n, criterion in enumerate(criteria, 1))
    prompt = f"Transcript:\n{transcript_text(transcript) or '(nothing was said)'}\n\nCriteria:\n{listed}"
    config = types.GenerateContentConfig(
        system_instruction=INSTRUCTIONS, response_mime_type="application/json", response_json_schema=_Verdicts.model_json_schema()
    )
    try:
        response = await client.aio.models.generate_content(model=judge_model_name(), contents=prompt, config=config)
    except Exception as exc:  # the SDK raises its own errors, httpx's and ssl's: all one line for a test
        raise JudgeError(f"the judge ({judge_model_name()}) failed: {type(exc).__name__}: {str(exc)[:200]}") from None
    try:
        verdicts = _Verdicts.model_validate(json.loads(response.text or "")).verdicts
    except (ValueError, ValidationError):
        raise JudgeError(
            f"the judge ({judge_model_name()}) answered something else than verdicts: {(response.text or '')[:200]!r}"
        ) from None
    if len(verdicts) != len(criteria):
        raise JudgeError(f"the judge gave {len(verdicts)} verdicts for {len(criteria)} criteria")
    # The judge's copy of a criterion may be reworded: the test's own words are kept.
    return [verdict.model_copy(update={"criterion": criterion}) for verdict, criterion in zip(verdicts, criteria, strict=True)]


async def expect_said(settings: Settings | None, transcript: Sequence[tuple[str, str]], criteria: Sequence[str], reply: str | None) -> None:
    """`Conversation.expect_said`: offline (`settings` None) each criterion is words the agent
    said in `reply` (or the whole call); else the judge decides. AssertionError if not met."""
    said = reply if reply is not None else " ".join(text for speaker, text in transcript if speaker == "agent")
    if settings is None:
        missed = [c for c in criteria if c.lower() not in said.lower()]
        if missed:
            raise AssertionError(f"the agent never said {missed[0]!r}; it said: {said[-300:] or '(nothing)'!r}")
        return
    if reply is not None:
        criteria = [f"{c} (judge only the agent's reply: {reply!r})" for c in criteria]
    failed = [v for v in await judge_said(settings, transcript, criteria) if not v.met]
    if failed:
        raise AssertionError("; ".join(f"not met: {v.criterion} ({v.reason})" for v in failed))
