"""Tool results the model can act on: every result says what happened.

3.8 Live sweeps a tool two to five times in silence when a result says nothing useful (`[]`,
`null`, `{}`), and Vertex AI's 3.8 guide asks that every function response carry `status`,
`retryable` and a `message`. A tool written for 2.5 returns `{"result": []}` or
`{"error": "..."}`; `for_model` adds what is missing, whatever the family (the fields cost a
few tokens and help every model), and never changes what the tool said.
"""

from __future__ import annotations

from typing import Any

EMPTY: tuple[Any, ...] = (None, [], {}, "")
NO_RESULTS_MESSAGE = "Nothing was found. Tell the caller; calling again with the same arguments will not help."


def for_model(response: dict[str, Any]) -> dict[str, Any]:
    """`response` with `status`, `retryable` and `message` where the tool gave none.

    - an error: status `error` (or the tool's own, e.g. `invalid_argument`, `timeout`),
      retryable false unless the tool said otherwise, the error as the message;
    - an empty result (`{}`, or only an empty `result`): status `no_results`, not retryable;
    - anything else: status `ok`.
    """
    described = dict(response)
    error = described.get("error")
    if error:
        described.setdefault("status", "error")
        described.setdefault("retryable", False)
        described.setdefault("message", str(error))
        return described
    payload = {k: v for k, v in described.items() if k not in ("status", "retryable", "message", "scheduling")}
    empty = not payload or (set(payload) == {"result"} and payload["result"] in EMPTY)
    if empty:
        described.setdefault("status", "no_results")
        described.setdefault("retryable", False)
        described.setdefault("message", NO_RESULTS_MESSAGE)
        return described
    described.setdefault("status", "ok")
    described.setdefault("retryable", False)
    return described
