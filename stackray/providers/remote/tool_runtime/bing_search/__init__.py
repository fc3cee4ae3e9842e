"""`remote::bing-search`: web search with the Bing Web Search API."""
