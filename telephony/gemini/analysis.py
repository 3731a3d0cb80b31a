"""The request behind post-call analysis (`telephony.agents.analysis`): the transcript in, a
summary, a success verdict and the agent's fields out, as structured output."""

from __future__ import annotations

import json
from typing import Any

from google import genai
from google.genai import types

DEFAULT_ANALYSIS_MODEL = "gemini-3.6-flash"

INSTRUCTIONS = """You analyse a finished phone call between a caller and a business's voice agent.
Write a short factual summary (two or three sentences), decide whether the call was a success by
the given criterion, and fill the requested fields from what was said; leave a field empty (null)
when the call did not say it. Keypad entries are masked; never guess them."""


class AnalysisError(RuntimeError):
    """The model could not be asked, or answered something else."""


def response_schema(fields: dict[str, Any] | None) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "summary": {"type": "string"},
        "success": {"type": "boolean"},
        "success_reason": {"type": "string"},
    }
    if fields is not None:
        properties["fields"] = fields
    return {"type": "object", "properties": properties, "required": list(properties)}


async def analyze_call(client: genai.Client, model: str, transcript: str, success: str, fields: dict[str, Any] | None) -> dict[str, Any]:
    prompt = f"Success means: {success}\n\nTranscript:\n{transcript or '(nothing was said)'}"
    config = types.GenerateContentConfig(
        system_instruction=INSTRUCTIONS, response_mime_type="application/json", response_json_schema=response_schema(fields)
    )
    try:
        response = await client.aio.models.generate_content(model=model, contents=prompt, config=config)
    except Exception as exc:  # the SDK's, httpx's, aiohttp's errors: one line in the log
        raise AnalysisError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    try:
        result = json.loads(response.text or "")
    except ValueError:
        raise AnalysisError(f"not JSON: {(response.text or '')[:120]!r}") from None
    if not isinstance(result, dict) or "summary" not in result:
        raise AnalysisError("the answer has no summary")
    return {"model": model} | result
