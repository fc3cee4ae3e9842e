"""`remote::model-context-protocol`: tool groups served by MCP servers."""
