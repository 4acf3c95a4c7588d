"""MCP: Loopgate's tools for AI agents, over Streamable HTTP (``/mcp``) and stdio.

``tools`` defines the tools once, over a :class:`~loopgate.mcp.gate.Gate`: the
in-process one (``LocalGate``, behind ``/mcp`` in the server) or the HTTP one
(``RemoteGate``, behind ``loopgate mcp --server URL``, the stdio server).
"""
