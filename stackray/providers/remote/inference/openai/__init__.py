"""`remote::openai`: OpenAI's API."""
