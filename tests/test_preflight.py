"""`telephony check`: each finding against the real clients and local stand-ins."""

from __future__ import annotations

import contextlib

from typer.testing import CliRunner

from telephony.cli import app
from telephony.cli.preflight import run_checks
from telephony.testing.gemini_live import GeminiLiveEmulator
from telephony.testing.twilio_rest import FakeTwilioRest

from conftest import ACCOUNT_SID, AUTH_TOKEN, emulator_settings, offline_stack

NUMBER = "+15550100002"


@contextlib.asynccontextmanager
async def world(voice_url_path: str = "/twiml", gemini_key: str = "offline-test-key"):
    """A running server on the Gemini emulator, and a Twilio account owning NUMBER."""
    gemini = GeminiLiveEmulator(api_key="offline-test-key")
    fake = FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN)
    async with gemini, fake.running(), offline_stack(gemini) as stack:
        fake.numbers[NUMBER] = stack.base_url + voice_url_path
        settings = emulator_settings(
            gemini,
            gemini_api_key=gemini_key,
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=AUTH_TOKEN,
            twilio_api_base=fake.base_url,
            from_number=NUMBER,
            public_url=stack.base_url,
        )
        yield settings, gemini


def by_name(checks):
    return {c.name: c for c in checks}


async def test_a_ready_setup_passes_every_check_except_plain_http():
    async with world() as (settings, gemini):
        checks = by_name(await run_checks(settings))
    assert checks["Gemini Live"].ok and "set up in" in checks["Gemini Live"].detail and "(3.8 Live)" in checks["Gemini Live"].detail
    assert len(gemini.connections) == 1 and gemini.connections[0].setup["model"].startswith("models/")
    assert checks["Twilio account"].ok and checks["Phone number"].ok
    # The local server answers, but over http://: Twilio's media stream needs wss://.
    assert checks["Public URL"].ok is False and "needs https://" in checks["Public URL"].detail


async def test_wrong_keys_and_a_stale_webhook_are_named_with_the_fix():
    async with world(voice_url_path="/old-tunnel/twiml", gemini_key="a-wrong-key") as (settings, gemini):
        settings.twilio_auth_token = type(settings.twilio_auth_token)("not-the-token")
        checks = by_name(await run_checks(settings))
    assert checks["Gemini Live"].ok is False and "GEMINI_API_KEY" in checks["Gemini Live"].fix
    assert gemini.refused == 1
    assert checks["Twilio account"].ok is False and "TWILIO_AUTH_TOKEN" in checks["Twilio account"].fix
    async with world(voice_url_path="/old-tunnel/twiml") as (settings, _):
        checks = by_name(await run_checks(settings))
    stale = checks["Phone number"]
    assert stale.ok is False and "/old-tunnel/twiml" in stale.detail
    assert f"twilio phone-numbers:update {NUMBER} --voice-url {settings.public_url}/twiml" in stale.fix


async def test_missing_settings_are_skipped_and_an_unreachable_server_fails():
    async with GeminiLiveEmulator() as gemini:
        settings = emulator_settings(gemini, public_url="http://127.0.0.1:9")  # nothing listens there
        checks = by_name(await run_checks(settings))
    assert checks["Gemini Live"].ok
    assert checks["Twilio account"].ok is None and "TWILIO_ACCOUNT_SID" in checks["Twilio account"].detail
    assert checks["Public URL"].ok is False and "telephony serve" in checks["Public URL"].fix


def test_the_command_exits_non_zero_and_shows_the_table_when_a_check_fails(monkeypatch):
    for name in (
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_CLOUD_PROJECT",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TELEPHONY_PUBLIC_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 1, result.output
    assert "Gemini Live" in result.output and "GEMINI_API_KEY" in result.output


async def test_an_unreachable_public_url_names_its_cause():
    import asyncio

    from telephony.cli.preflight import check_public_url, check_serve_settings

    async def never_answers(reader, writer):
        await asyncio.sleep(30)

    silent = await asyncio.start_server(never_answers, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    async with GeminiLiveEmulator() as gemini, silent:
        refused = await check_public_url(emulator_settings(gemini, public_url="http://127.0.0.1:9"))
        dns = await check_public_url(emulator_settings(gemini, public_url="https://no-such-host.invalid"))
        tls = await check_public_url(emulator_settings(gemini, public_url=gemini.base_url))  # a certificate we do not trust
        slow = await check_public_url(emulator_settings(gemini, public_url=f"http://127.0.0.1:{port}"), timeout_s=0.5)
        unsigned = check_serve_settings(emulator_settings(gemini, validate_signatures=True))
    assert "connection refused" in refused.detail
    assert "DNS" in dns.detail
    assert "TLS" in tls.detail, tls
    assert "timed out" in slow.detail
    assert unsigned.ok is False and "TWILIO_AUTH_TOKEN" in unsigned.detail


async def test_the_agents_exact_setup_is_opened_and_a_refusal_is_the_services_reason_in_one_line():
    from telephony import Agent
    from telephony.cli.preflight import check_gemini

    agent = Agent("desk", instructions="Book visits.")

    @agent.tool(behavior="blocking")
    def book(slot: str) -> str:
        """Book a slot."""
        return slot

    # The service behaves as Extended Thinking (whatever the setup says): it refuses a setup
    # without a thinking level, and the check says so in the service's words.
    async with GeminiLiveEmulator(model="gemini-3.8-live-extended-thinking") as gemini:
        refused = await check_gemini(emulator_settings(gemini), agent)
        ok = await check_gemini(emulator_settings(gemini, model="gemini-3.8-live-extended-thinking"), Agent("plain"))
    assert refused.name == "Gemini Live (desk)" and refused.ok is False
    assert "thinking_level is required for this model" in refused.detail and "(code 1007)" in refused.detail
    assert "\n" not in refused.detail
    setup = gemini.connections[0].setup
    assert [d["name"] for d in setup["tools"][0]["function_declarations"]] == ["end_call", "send_dtmf", "book"], "the agent's own tools"
    assert ok.ok and "Extended Thinking" in ok.detail
