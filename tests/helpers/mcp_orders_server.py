"""A small MCP server (stdio) for the tests: the kind of tool server a user already has."""

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("orders")


@server.tool()
def order_status(order: int) -> str:
    """Look an order up by its number."""
    if order == 13:
        raise ToolError("order 13 is lost")  # a message meant for the model
    return f"order {order} was shipped on Monday"


@server.tool()
def internal_only() -> str:
    """Not for the phone agent."""
    return "secret"


if __name__ == "__main__":
    server.run()
