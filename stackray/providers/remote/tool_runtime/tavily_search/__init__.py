"""`remote::tavily-search`: web search with Tavily."""
