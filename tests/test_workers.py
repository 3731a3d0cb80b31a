"""`telephony serve --workers 2`: two processes on one port share the calls, the history and
the metrics, and SIGTERM drains both to a clean exit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx

from telephony.testing.gemini_live import GeminiLiveEmulator
from telephony.testing.twilio_media import TwilioMediaEmulator

from conftest import AUTH_TOKEN, FIXTURES, free_port, wait_until_healthy


def server_env(gemini: GeminiLiveEmulator, data_dir, **extra: str) -> dict[str, str]:
    """`telephony serve` in a child process, on the emulator, signed, its store in `data_dir`."""
    return dict(
        os.environ,
        GEMINI_API_KEY="offline",
        TELEPHONY_GEMINI_BASE_URL=gemini.base_url,
        TELEPHONY_GEMINI_CA_FILE=str(gemini.ca_file),
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TELEPHONY_DATA_DIR=str(data_dir),
        TELEPHONY_MEDIA_RATE_LIMIT="5",
        **extra,
    )


async def test_two_workers_share_one_port_the_history_and_the_metrics_and_drain_on_sigterm(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with GeminiLiveEmulator(speed=4.0) as gemini:
        env = server_env(gemini, tmp_path, TELEPHONY_PUBLIC_URL=base, TELEPHONY_PORT=str(port))
        server = subprocess.Popen(
            [sys.executable, "-m", "telephony", "serve", "--workers", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            await wait_until_healthy(base, process=server)
            async with httpx.AsyncClient() as client:
                # At 2x (not 4x): six calls in two processes on a busy machine still hear their replies.
                callers = [TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", speed=2.0, auth_token=AUTH_TOKEN) for _ in range(6)]
                results = await asyncio.gather(*(caller.call(base + "/twiml") for caller in callers))
                for _ in range(100):  # the store's writers catch up
                    listing = (await client.get(base + "/api/calls")).json()
                    if listing["total"] == 6:
                        break
                    await asyncio.sleep(0.1)
                metrics = (await client.get(base + "/metrics")).text
                pids = set()
                for _ in range(40):  # a new connection each time: the kernel picks the worker
                    async with httpx.AsyncClient() as fresh:
                        pids.add((await fresh.get(base + "/healthz")).json().get("pid"))
            server.send_signal(signal.SIGTERM)
            output, _ = await asyncio.to_thread(server.communicate, timeout=30)
        finally:
            if server.poll() is None:
                server.kill()
    heard = [(r.close_code, round(r.heard_seconds, 2)) for r in results]  # for the message only
    assert all(r.close_code == 1000 and r.heard_seconds > 0.5 for r in results), f"(close code, seconds heard) per call: {heard}"
    assert "2 workers on one port" in output.decode()
    assert len(pids) == 2, f"both workers took requests: {pids}"
    assert listing["total"] == 6, "every worker's calls are in the one history"
    completed = [line for line in metrics.splitlines() if line.startswith('telephony_calls_total{outcome="completed"}')]
    assert completed and float(completed[0].split()[-1]) == 6.0, metrics[:2000]
    assert server.returncode == 0, output.decode()[-2000:]


async def test_a_captured_stream_replayed_to_two_workers_and_another_instance_opens_one_gemini_session(tmp_path):
    """The token is spent and the CallSid taken in the shared store: whichever process a replay
    lands on, it opens nothing (two workers on one port, and another instance of two on the same file)."""
    ports = [free_port(), free_port()]
    async with GeminiLiveEmulator(speed=4.0) as gemini:
        base_env = server_env(gemini, tmp_path)  # one SQLite file for every process
        servers = [
            subprocess.Popen(
                [sys.executable, "-m", "telephony", "serve", "--workers", str(workers)],
                # Behind one load balancer: one public address for both instances.
                env={**base_env, "TELEPHONY_PORT": str(port), "TELEPHONY_PUBLIC_URL": f"http://127.0.0.1:{ports[0]}"},
                stdout=open(tmp_path / f"server{port}.log", "w"),
                stderr=subprocess.STDOUT,
            )
            for port, workers in zip(ports, (2, 2), strict=True)
        ]
        try:
            for port, server in zip(ports, servers, strict=True):
                await wait_until_healthy(f"http://127.0.0.1:{port}", process=server)
            first = TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", speed=2.0, auth_token=AUTH_TOKEN)
            target = await first.answer(f"http://127.0.0.1:{ports[0]}/twiml")  # one signed webhook, one token
            replays = []
            for index in range(10):  # the same upgrade and `start`, to the workers and to the other instance
                port = ports[0] if index < 7 else ports[1]
                caller = TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", speed=2.0, auth_token=AUTH_TOKEN)
                replays.append(caller.play(target, connect_url=f"ws://127.0.0.1:{port}/media-stream"))
            results = await asyncio.gather(*replays)
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                await asyncio.to_thread(server.wait, 30)
    assert len(gemini.connections) == 1, f"{len(gemini.connections)} Gemini sessions for one call"
    assert sorted(r.close_code for r in results) == [1000] + [1008] * 9


def test_workers_without_a_store_are_refused_in_one_line(tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "GEMINI_API_KEY": "k", "TWILIO_AUTH_TOKEN": "0" * 32,
           "TELEPHONY_DATABASE_URL": "off", "TELEPHONY_PUBLIC_URL": "https://voice.example.com"}  # fmt: skip
    command = [sys.executable, "-m", "telephony", "serve", "--workers", "2"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert (done.stdout + done.stderr).strip().splitlines() == [
        "config: 2 workers need the call store (TELEPHONY_DATABASE_URL is off): a stream token must be used once and a live "
        "call have one stream across them; keep the default SQLite file, or use --workers 1"
    ]
