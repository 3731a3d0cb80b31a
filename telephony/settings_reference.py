"""Every setting as documentation, made from `Settings` itself so that it cannot drift: the
docs site's configuration table (docs/configuration.md) and `.env.example` (`python -m
telephony.settings_reference` rewrites both; a test fails when either is stale)."""

from __future__ import annotations

import enum
import sys
from pathlib import Path

from pydantic.fields import FieldInfo

from telephony.settings import Settings, env_name

SECTION = "# Configuration"
PAGE = Path("docs") / "configuration.md"
TABLE_HEADER = "| variable | default | what it does |\n|---|---|---|\n"


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        return ",".join(map(str, value)) if isinstance(value, list) else str(value)
    value = field.default
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def _rows() -> list[tuple[str, str, str]]:
    return [(env_name(name), _default(field), field.description or "") for name, field in Settings.model_fields.items()]


def settings_table() -> str:
    def shown(default: str) -> str:
        if not default:
            return ""
        return f"`{default}`" if len(default) <= 40 else "(long: see `.env.example`)"

    lines = [f"| `{env}` | {shown(default)} | {what} |" for env, default, what in _rows()]
    return TABLE_HEADER + "\n".join(lines) + "\n"


def env_example() -> str:
    lines = [
        "# Every setting telephony reads, with its default; copy to .env and uncomment what you change.",
        "# Made by `python -m telephony.settings_reference` from telephony/settings.py.",
        "",
    ]
    for env, default, what in _rows():
        lines.append(f"# {what}")
        lines.append(f"# {env}={default}")
    return "\n".join(lines) + "\n"


def with_table(page: str) -> str:
    """The configuration page with its table replaced by the current one."""
    head, rest = page.split(SECTION, 1)
    start = rest.index(TABLE_HEADER)
    end = start + len(TABLE_HEADER)
    lines = rest[end:].split("\n")
    kept = 0
    while kept < len(lines) and lines[kept].startswith("| `"):
        kept += 1
    return head + SECTION + rest[:start] + settings_table() + "\n".join(lines[kept:])


def main(root: Path) -> None:
    page = root / PAGE
    page.write_text(with_table(page.read_text(encoding="utf-8")), encoding="utf-8")
    (root / ".env.example").write_text(env_example(), encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
