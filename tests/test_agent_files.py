"""No-code agents (TOML with HTTP tools), `--agent` specs, and the hold tone of slow tools,
over real sockets: the emulated model calls the tool, a real HTTP backend answers it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from telephony import Agent
from telephony.agents.loading import SIGNATURE_HEADER, AgentLoadError, load_agent
from telephony.audio.mulaw import decode_mulaw
from telephony.testing.gemini_live import EmulatedToolCall, GeminiLiveEmulator, Reply, ScriptedAgent, tone24k
from telephony.web.server import running_server

from conftest import as_the_tool_said, offline_stack

SECRET = "tool-signing-secret"


def backend(requests: list[dict]) -> FastAPI:
    """The user's own tool server: checks our signature, answers JSON."""
    app = FastAPI()

    @app.post("/tools/free_slots")
    async def free_slots(request: Request) -> JSONResponse:
        body = await request.body()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get(SIGNATURE_HEADER, ""), expected):
            return JSONResponse({"detail": "bad signature"}, 401)
        payload = json.loads(body)
        requests.append(payload)
        return JSONResponse({"day": payload["arguments"]["day"], "free": ["09:00", "14:30"]})

    @app.post("/tools/broken")
    async def broken() -> JSONResponse:
        return JSONResponse({"detail": "database down"}, 503)

    return app


def agent_toml(base: str) -> str:
    return textwrap.dedent(
        f"""
        name = "clinic"
        instructions = "You are the front desk of Maple Clinic."
        voice = "Aoede"
        greeting = "Greet the caller."

        [[tools]]
        name = "free_slots"
        description = "List the free appointment times on a day."
        url = "{base}/tools/free_slots"
        timeout_seconds = 5

        [tools.parameters]
        type = "object"
        required = ["day"]
        properties.day = {{ type = "string", pattern = "^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$" }}

        [[tools]]
        name = "broken"
        description = "Always fails."
        url = "{base}/tools/broken"
        """
    )


@pytest.mark.parametrize(
    "args,expected",
    [
        ({"day": "2026-12-02"}, {"day": "2026-12-02", "free": ["09:00", "14:30"]}),
        ({"day": "tomorrow"}, {"error": "invalid arguments: day: 'tomorrow' does not match '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'"}),
    ],
    ids=["answered", "bad-arguments"],
)
async def test_a_toml_agents_http_tool_is_called_signed_and_its_json_reaches_the_model(tmp_path, ca_bundle_loads, args, expected):
    requests: list[dict] = []
    async with running_server(backend(requests)) as base:
        path = tmp_path / "agent.toml"
        path.write_text(agent_toml(base))
        agent = load_agent(str(path), SECRET.encode())
        model = ScriptedAgent(
            [Reply(audio24k=tone24k(0.5), tool_calls=(EmulatedToolCall("free_slots", args), EmulatedToolCall("broken", {})))],
            respond_to_text=False,
        )
        async with GeminiLiveEmulator(model, speed=4.0) as gemini, offline_stack(gemini, agent=agent) as stack:
            # Regression: each HTTP tool made its client at its first call, and httpx loads the
            # CA bundle for every client (~20 ms with the event loop held: every call's audio waits).
            ca_bundle_loads.clear()  # from here on: what the call itself loads
            result = await stack.replay("one_sentence", speed=2.0)  # HTTP tools answer before the hang-up, even when busy
    assert ca_bundle_loads == [], "no CA bundle loaded while a call runs: the tools' clients share the context made at load"
    connection = gemini.connections[0]
    assert connection.setup["generation_config"]["speech_config"]["voice_config"]["prebuilt_voice_config"]["voice_name"] == "Aoede"
    free, broken = connection.tool_responses
    assert as_the_tool_said(free["response"]) == expected
    assert free["response"]["status"] == ("error" if "error" in expected else "ok")
    assert broken["response"]["error"].startswith("the tool's server answered HTTP 503")
    if "error" not in expected:
        (request,) = requests
        assert request == {
            "name": "free_slots",
            "arguments": args,
            "call_sid": result.call_sid,
            "from": "+15550100001",
            "to": "+15550100002",
        }
    else:
        assert requests == [], "bad arguments never reach your server"


@pytest.mark.parametrize(
    "content,message",
    [
        ("name = 'x'\n[[tools]]\nname = 'a'\nurl = 'https://x'\n", "tools.0.description: Field required"),
        ("name = 'x'\nvoice = 'kore'\n", "unknown voice 'kore': did you mean 'Kore'?"),
        ("name = 'x'\nunknown_field = 1\n", "unknown_field: Extra inputs are not permitted"),
        ("name = \n", "not valid TOML"),
        (
            "[[tools]]\nname='a'\ndescription='d'\nurl='https://x'\nparameters={type='objekt'}\n",
            "tools.a.parameters is not a valid JSON Schema",
        ),
        ("name = 'x'\nvoicemail = 5\n", "voicemail: the message to leave on an answering machine (text), or false to hang up on one"),
        ("name = 'x'\n[analysis]\nfields = { type = 'array' }\n", "analysis fields must describe an object"),
    ],
    ids=["missing-field", "bad-voice", "unknown-field", "not-toml", "bad-schema", "bad-voicemail", "bad-analysis-fields"],
)
def test_a_toml_agent_with_a_mistake_is_one_line_naming_the_file_and_the_field(tmp_path, content, message):
    path = tmp_path / "agent.toml"
    path.write_text(content)
    with pytest.raises(AgentLoadError) as error:
        load_agent(str(path), SECRET.encode())
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_serve_with_a_bad_agent_spec_says_so_in_one_line_and_exits_2(tmp_path):
    (tmp_path / "myagents.py").write_text("agent = 42\n")
    env = {"GEMINI_API_KEY": "AIza-secret-value", "TELEPHONY_VALIDATE_SIGNATURES": "false", "PATH": ""}
    for spec, message in [
        ("nosuch:agent", "cannot import 'nosuch'"),
        ("myagents:missing", "has no attribute 'missing'"),
        ("myagents:agent", "'agent' is a int; it must be an Agent"),
        ("agentfile", "use module:attribute"),
        (str(tmp_path / "absent.toml"), "cannot read it"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "telephony", "serve", "--agent", spec], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        output = done.stdout + done.stderr
        assert done.returncode == 2, output
        assert message in output and "Traceback" not in output and "AIza" not in output
        assert len(output.strip().splitlines()) == 1, output


async def test_a_slow_tool_gets_the_hold_tone_which_stops_when_its_result_is_back():
    agent = Agent("patient-desk", tool_timeout_s=20)

    @agent.tool
    async def look_up_records(patient: str) -> dict:
        """Slow back-office lookup."""
        await asyncio.sleep(3.0)
        return {"patient": patient, "visits": 3}

    model = ScriptedAgent([Reply(audio24k=tone24k(1.0, 880.0), tool_calls=(EmulatedToolCall("look_up_records", {"patient": "Ada"}),))])
    async with GeminiLiveEmulator(model, speed=1.0) as gemini, offline_stack(gemini, agent=agent) as stack:
        result = await stack.replay("one_sentence", speed=1.0)
    (response,) = gemini.connections[0].tool_responses
    assert as_the_tool_said(response["response"]) == {"patient": "Ada", "visits": 3}
    answer_at = min(at for at, frame in result.played if _pitch(frame) > 700)
    hold = [at for at, frame in result.played if 300 < _pitch(frame) < 600]
    assert hold, "the caller heard the hold tone while the tool worked"
    assert max(hold) < answer_at, "and none of it once the answer began"


def _pitch(frame: bytes) -> float:
    pcm = np.frombuffer(decode_mulaw(frame), dtype="<i2").astype(float)
    if np.abs(pcm).max() < 200:
        return 0.0
    return np.count_nonzero(np.diff(np.sign(pcm)) != 0) / 2 / (len(pcm) / 8000)


MCP_SERVER = Path(__file__).resolve().parent / "helpers" / "mcp_orders_server.py"


@pytest.mark.parametrize(
    "order,expected", [(42, {"result": "order 42 was shipped on Monday"}), (13, "order 13 is lost")], ids=["ok", "tool-error"]
)
async def test_an_mcp_servers_tool_is_offered_to_the_model_and_called_through_it(tmp_path, order, expected):
    from telephony.agents.mcp_tools import mcp_tools_of

    path = tmp_path / "agent.toml"
    path.write_text(f'name = "orders"\n[[mcp]]\ncommand = "{sys.executable}"\nargs = ["{MCP_SERVER}"]\ntools = ["order_status"]\n')
    agent = load_agent(str(path))
    model = ScriptedAgent([Reply(audio24k=tone24k(0.5), tool_calls=(EmulatedToolCall("order_status", {"order": order}),))])
    async with mcp_tools_of(agent):
        assert list(agent.tools) == ["order_status"], "only the tools the file asked for"
        async with GeminiLiveEmulator(model, speed=4.0) as gemini, offline_stack(gemini, agent=agent) as stack:
            await stack.replay("one_sentence", speed=2.0)  # the MCP server answers before the hang-up, even when busy
    (declared,) = [d for d in gemini.connections[0].setup["tools"][0]["function_declarations"] if d["name"] == "order_status"]
    assert declared["description"] == "Look an order up by its number."
    assert declared["parameters_json_schema"]["properties"]["order"]["type"] == "integer"
    (response,) = gemini.connections[0].tool_responses
    if isinstance(expected, dict):
        assert as_the_tool_said(response["response"]) == expected
    else:
        assert expected in response["response"]["error"]


async def test_an_mcp_server_that_cannot_start_is_one_line(tmp_path):
    from telephony.agents.mcp_tools import McpError, mcp_tools_of

    path = tmp_path / "agent.toml"
    path.write_text('name = "orders"\n[[mcp]]\ncommand = "/nonexistent/mcp-server"\n')
    agent = load_agent(str(path))
    with pytest.raises(McpError) as error:
        async with mcp_tools_of(agent):
            pass
    assert str(error.value).startswith("MCP server /nonexistent/mcp-server: cannot connect") and "\n" not in str(error.value)
