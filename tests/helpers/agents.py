"""Small agents with one tool, shared by the tests of the test kit, events and traces; and a
judge that stands in for the real one."""

from __future__ import annotations

import json

from telephony import Agent
from telephony.testing.text_model import prompt_text


def parcel_agent() -> Agent:
    agent = Agent("parcels", instructions="You track parcels for Swift Post.")

    @agent.tool
    def track(number: str) -> dict:
        """Where a parcel is.

        Args:
            number: The tracking number.
        """
        return {"number": number, "status": "out for delivery"}

    return agent


def shop_agent() -> Agent:
    agent = Agent("shop", instructions="You answer questions about orders.")

    @agent.tool
    def order_status(order: int) -> dict:
        """Look an order up.

        Args:
            order: The order number.
        """
        return {"order": order, "state": "shipped"}

    return agent


class FirstWordJudge:
    """A judge model: meets a criterion when its first word is in what the agent said; its
    reason quotes the agent's words."""

    def answer(self, model: str, request: dict) -> str:
        prompt = prompt_text(request)
        said = " ".join(line.lower() for line in prompt.splitlines() if line.startswith("AGENT:"))
        criteria = [line.split(". ", 1)[1] for line in prompt.split("Criteria:\n", 1)[1].splitlines() if ". " in line]
        verdicts = [{"criterion": c, "met": c.split()[0].lower() in said, "reason": f"the agent said: {said[:60]}"} for c in criteria]
        return json.dumps({"verdicts": verdicts})
