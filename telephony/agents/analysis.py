"""Post-call analysis, per agent: after each call a Gemini text model reads the transcript and
writes a summary, a success verdict and the fields you declare (structured output). It is
stored with the call, shown on the dashboard, and sent as `call.analysis_ready`.

    class Booking(BaseModel):
        booked: bool
        day: str | None = None

    agent = Agent("clinic", ..., analysis=Analysis(fields=Booking, success="an appointment was booked"))

In agent.toml: `[analysis]` with `success = "..."` and `fields = { ...JSON schema... }`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Analysis:
    """`fields`: a pydantic model class or a JSON schema (object) of what to extract; None:
    only the summary and the verdict. `success`: what counts as a successful call for this
    agent (the verdict's criterion). `model`: the text model (default
    `TELEPHONY_ANALYSIS_MODEL`)."""

    fields: type[BaseModel] | dict[str, Any] | None = None
    success: str = "the caller got what they called for"
    model: str | None = None

    def __post_init__(self) -> None:
        schema = self.fields_schema()
        if schema is not None and schema.get("type", "object") != "object":
            raise ValueError("analysis fields must describe an object: a pydantic model, or a JSON schema of type object")

    def fields_schema(self) -> dict[str, Any] | None:
        if self.fields is None:
            return None
        if isinstance(self.fields, dict):
            return self.fields
        return self.fields.model_json_schema()
