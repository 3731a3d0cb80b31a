"""Shared helpers: real emulators on 127.0.0.1, settings that point the real SDK at them."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from pathlib import Path

import pytest

from telephony.audio.transcode import CallerToGemini
from telephony.gemini import GeminiLiveSession
from telephony.settings import Settings
from telephony.testing.call_fixture import caller_audio
from telephony.testing.gemini_live import GeminiLiveEmulator
from telephony.testing.ports import free_port  # noqa: F401 (tests import it from here)
from telephony.web.composition import agent_options_from, gemini_client_from

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def emulator_settings(emulator: GeminiLiveEmulator, **overrides) -> Settings:
    """Settings for a server whose Gemini is the emulator (no keys, no network)."""
    values = dict(
        gemini_api_key="offline-test-key",
        gemini_base_url=emulator.base_url,
        gemini_ca_file=emulator.ca_file,
        validate_signatures=False,
        media_rate_limit=20.0,  # replays run faster than real time
        database_url="sqlite:///:memory:",  # call history per app, gone with it
        # A scripted model falls silent when its script ends, which is what a stalled model
        # does: the stall watch is off here and on in the tests that are about it.
        stall_seconds=0.0,
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def open_session(emulator: GeminiLiveEmulator, resume_handle: str | None = None, **options) -> GeminiLiveSession:
    """A real google-genai Live session on the emulator, as the bridge opens one."""
    settings = emulator_settings(emulator)
    session = GeminiLiveSession(gemini_client_from(settings), agent_options_from(settings).with_overrides(**options))
    await session.open(resume_handle=resume_handle)
    return session


async def speak_fixture(session: GeminiLiveSession, name: str, speed: float = 4.0) -> None:
    """Send a recorded call's caller audio, transcoded as the bridge does, `speed`x real time."""
    mulaw = caller_audio(FIXTURES / f"{name}.jsonl")
    transcoder = CallerToGemini()
    for i in range(0, len(mulaw), 160):
        await session.send_audio(transcoder.process(mulaw[i : i + 160]))
        await asyncio.sleep(0.02 / speed)


async def wait_until_healthy(base_url: str, seconds: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """A server started in another process answers /healthz (or the test fails here).

    Returns as soon as it answers. The bound is for a server that never comes up: on a slow
    shared machine `serve --workers 2` took 6 s to start with nothing else running, and more
    than the 10 s this once allowed beside the suite's other workers. With `process`, a server
    that exited (e.g. its port was taken) fails the test at once, saying so."""
    import httpx

    async with httpx.AsyncClient() as client:
        for _ in range(int(seconds / 0.05)):
            if process is not None and process.poll() is not None:
                pytest.fail(f"the server for {base_url} exited with code {process.returncode} before answering /healthz")
            try:
                if (await client.get(base_url + "/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    pytest.fail(f"{base_url} never answered /healthz")


async def until_served(base_url: str, call: asyncio.Task, path: str = "/healthz", check=lambda r: r.json()["active_calls"] >= 1) -> None:
    """A server in another process (or a container) carries a call: polled on its /healthz
    (or until `check` holds for `path`), instead of sleeping and hoping; fails if the call
    ends first."""
    import httpx

    async with httpx.AsyncClient() as client:
        for _ in range(1000):
            assert not call.done(), "the call ended before the server was seen carrying it"
            if check(await client.get(base_url + path)):
                return
            await asyncio.sleep(0.02)
    pytest.fail(f"{base_url}{path} never showed the call")


@pytest.fixture
async def gemini_emulator():
    async with GeminiLiveEmulator() as emulator:
        yield emulator


AUTH_TOKEN = "test-auth-token"
ACCOUNT_SID = "AC" + "0" * 32


class Stack:
    """A whole offline deployment: Gemini emulator + our server, with signatures on."""

    def __init__(self, gemini: GeminiLiveEmulator, app, base_url: str, settings: Settings) -> None:
        self.gemini, self.app, self.base_url, self.settings = gemini, app, base_url, settings

    @property
    def webhook(self) -> str:
        return self.base_url + "/twiml"

    def records(self):
        return list(self.app.state.recent_calls.values())

    async def replay(self, fixture, speed: float = 4.0, **kwargs):
        from telephony.testing.twilio_media import TwilioMediaEmulator

        if isinstance(fixture, str):
            fixture = FIXTURES / f"{fixture}.jsonl"
        emulator = TwilioMediaEmulator(fixture, speed=speed, auth_token=AUTH_TOKEN, **kwargs)
        return await emulator.call(self.webhook)


@contextlib.asynccontextmanager
async def offline_stack(gemini: GeminiLiveEmulator | None = None, agent=None, **overrides):
    """Start the server against a Gemini emulator; signatures and tokens are checked."""
    from telephony.web.app import create_app
    from telephony.web.server import running_server

    async with contextlib.AsyncExitStack() as stack:
        if gemini is None:
            gemini = await stack.enter_async_context(GeminiLiveEmulator(speed=4.0))
        values = dict(validate_signatures=True, twilio_auth_token=AUTH_TOKEN, twilio_account_sid=ACCOUNT_SID)
        values.update(overrides)
        settings = emulator_settings(gemini, **values)
        app = create_app(settings, agent=agent)
        base_url = await stack.enter_async_context(running_server(app))
        settings.public_url = base_url  # as Twilio would reach it
        yield Stack(gemini, app, base_url, settings)


@pytest.fixture
async def stack():
    async with offline_stack() as running:
        yield running


@pytest.fixture
def ca_bundle_loads(monkeypatch) -> list[str]:
    """Every CA bundle loaded into a TLS context from now on: what httpx does for each client
    it builds without a shared context (~20 ms with the event loop held)."""
    loads: list[str] = []
    load = ssl.SSLContext.load_verify_locations
    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", lambda self, *a, **k: (loads.append("CAs"), load(self, *a, **k))[1])
    return loads


def as_the_tool_said(response: dict) -> dict:
    """A tool response as the tool returned it, without what the bridge adds for the model
    (`status`, `retryable`, `message`: `telephony.gemini.tool_results`; `scheduling` for a
    NON_BLOCKING call). Tests of those additions look at the whole response."""
    return {k: v for k, v in response.items() if k not in ("status", "retryable", "message", "scheduling")}


FAMILY_MATRIX: dict[tuple[str, str], str] = {}
"""What the caller heard in each (model family, scenario) cell of test_model_families.py."""
_CELLS_UNREPORTED: list[tuple[str, str, str]] = []


RUN_FIRST = ("tests/test_infra.py::test_compose", "tests/test_infra.py::test_the_image", "tests/test_bench.py")
"""The longest tests start first: with pytest-xdist (`make test`) the rest fill the other
workers around them instead of waiting at the end."""


def pytest_collection_modifyitems(items) -> None:
    items.sort(key=lambda item: next((i for i, prefix in enumerate(RUN_FIRST) if item.nodeid.startswith(prefix)), len(RUN_FIRST)))


def family_cell(family: str, scenario: str, text: str) -> None:
    """One cell of the matrix. With pytest-xdist the test runs in a worker: the cell travels
    to the summary in the test's report."""
    FAMILY_MATRIX[(family, scenario)] = text
    _CELLS_UNREPORTED.append((family, scenario, text))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.when == "teardown" and _CELLS_UNREPORTED:
        report.user_properties.append(("family_matrix", list(_CELLS_UNREPORTED)))
        _CELLS_UNREPORTED.clear()


def pytest_runtest_logreport(report) -> None:
    for name, cells in report.user_properties:
        if name == "family_matrix":
            FAMILY_MATRIX.update({(family, scenario): text for family, scenario, text in cells})


def pytest_terminal_summary(terminalreporter) -> None:
    """The model-family matrix, as measured at the Twilio emulator in this run."""
    if not FAMILY_MATRIX:
        return
    families = sorted({family for family, _ in FAMILY_MATRIX})
    scenarios = list(dict.fromkeys(scenario for _, scenario in FAMILY_MATRIX))
    terminalreporter.section("what the caller heard, per model family (measured at the Twilio emulator)")
    for scenario in scenarios:
        terminalreporter.write_line(f"{scenario}:")
        for family in families:
            if (family, scenario) in FAMILY_MATRIX:
                terminalreporter.write_line(f"  {family:<24} {FAMILY_MATRIX[(family, scenario)]}")


async def until_a_call_is_live(stack: Stack, call: asyncio.Task) -> None:
    """Until the server carries an admitted call (its CallSid is live), instead of sleeping
    and hoping; fails if the call ends first."""
    while not stack.app.state.voice.live_call_sids:
        assert not call.done(), "the call ended before it was seen live"
        await asyncio.sleep(0.01)


@pytest.fixture
def postgres():
    """A PostgreSQL server of its own in a temporary directory (Debian's `postgresql`)."""
    from helpers.postgres import PostgresServer, unavailable

    reason = unavailable()
    if reason:
        pytest.skip(reason)
    server = PostgresServer().init()
    yield server
    server.destroy()
