"""Agents and their tools: `Agent` (your agent as code), loading an agent from a module or a
TOML file, tools from MCP servers, and the built-in call control (hang up, transfer, keypad).
Users import `Agent` and friends from `telephony` itself."""
