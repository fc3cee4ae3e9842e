"""Remote tool runtime providers: MCP servers and web services (search, Wolfram|Alpha)."""
