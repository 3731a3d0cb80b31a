"""The README is the user's reference: it must name every setting the server reads."""

from __future__ import annotations

from pathlib import Path

from telephony.config import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_configuration_table_lists_every_setting_with_its_default():
    table = README.read_text(encoding="utf-8").split("## Configuration", 1)[1]
    rows = {line.split("|")[1].strip().strip("`"): line for line in table.splitlines() if line.startswith("| `")}
    for name, field in Settings.model_fields.items():
        env = field.validation_alias.choices[0] if field.validation_alias else f"TELEPHONY_{name.upper()}"
        assert env in rows, f"{env} is missing from the README's configuration table"
        default = field.default
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            assert f"`{default}`" in rows[env], f"{env}: the README shows another default than {default}"


async def test_the_readme_example_test_runs_as_written(monkeypatch):
    text = README.read_text(encoding="utf-8").split("## Offline testing of your own agent", 1)[1]
    source = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(source, "README.md example", "exec"), namespace)
    monkeypatch.chdir(README.parent)  # the example names fixtures/ relative to the repository
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "TWILIO_AUTH_TOKEN", "TELEPHONY_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    await namespace["test_the_agent_says_goodbye_and_hangs_up"]()


def test_the_demo_call_shipped_in_the_package_is_the_repository_fixture():
    from telephony.cli import DEMO_CALL

    assert DEMO_CALL.read_bytes() == (README.parent / "fixtures" / "barge_in.jsonl").read_bytes()
