"""The README (one page) and the docs site (docs/): every setting named, every example run as written."""

from __future__ import annotations

import re
from pathlib import Path

from telephony.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"
CONFIGURATION = README.parent / "docs" / "configuration.md"


def test_the_readme_fits_on_a_page_and_links_only_to_what_exists():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 250
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        assert (README.parent / target).exists(), f"README links to {target}, which is not there"


def test_the_configuration_page_lists_every_setting_with_its_default():
    table = CONFIGURATION.read_text(encoding="utf-8").split("# Configuration", 1)[1]
    rows = {line.split("|")[1].strip().strip("`"): line for line in table.splitlines() if line.startswith("| `")}
    for name, field in Settings.model_fields.items():
        env = field.validation_alias.choices[0] if field.validation_alias else f"TELEPHONY_{name.upper()}"
        assert env in rows, f"{env} is missing from docs/configuration.md"
        default = field.default
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            assert f"`{default}`" in rows[env], f"{env}: docs/configuration.md shows another default than {default}"


def test_the_readme_example_tests_run_as_written(monkeypatch):
    text = README.read_text(encoding="utf-8").split("## Test your agent", 1)[1].split("\n## ", 1)[0]
    assert len(text.strip().splitlines()) <= 40, "the section stays short"
    sources = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    assert len(sources) == 1
    monkeypatch.chdir(README.parent)  # the examples name fixtures/ relative to the repository
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "TWILIO_AUTH_TOKEN", "TELEPHONY_PUBLIC_URL", "TELEPHONY_AGENT"):
        monkeypatch.delenv(name, raising=False)
    ran = []
    for number, source in enumerate(sources):
        namespace: dict = {}
        exec(compile(source, f"README.md example {number + 1}", "exec"), namespace)
        for name, test in namespace.items():
            if name.startswith("test_"):
                test()  # plain pytest: no plugin, no fixture
                ran.append(name)
    assert ran == ["test_the_agent_looks_the_order_up_and_says_so"]


def test_the_first_section_puts_an_agent_with_a_tool_on_a_number_in_under_20_lines():
    section = README.read_text(encoding="utf-8").split("## Your agent, with your tools, on a phone number", 1)[1]
    code = [block.split("```", 1)[0] for block in section.split("```")[1:4:2]]
    lines = [line for block in code for line in block.splitlines()[1:] if line.strip()]
    assert len(lines) < 20, lines
    namespace: dict = {}
    exec("\n".join(code[0].splitlines()[1:]), namespace)  # the agent in it is real code
    assert list(namespace["agent"].tools) == ["free_slots"]


def test_the_demo_call_shipped_in_the_package_is_the_repository_fixture():
    from telephony.cli import DEMO_CALL

    assert DEMO_CALL.read_bytes() == (README.parent / "fixtures" / "barge_in.jsonl").read_bytes()


def test_the_settings_reference_is_current():
    """The configuration page's table and .env.example are made from Settings: `python -m telephony.settings_reference`."""
    from telephony.settings_reference import env_example, with_table

    page = CONFIGURATION.read_text(encoding="utf-8")
    assert with_table(page) == page, "run: python -m telephony.settings_reference"
    example = (README.parent / ".env.example").read_text(encoding="utf-8")
    assert example == env_example(), "run: python -m telephony.settings_reference"
    for name in Settings.model_fields:
        from telephony.settings import env_name

        assert f"# {env_name(name)}=" in example
