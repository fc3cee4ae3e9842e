"""`remote::brave-search`: web search with the Brave Search API."""
