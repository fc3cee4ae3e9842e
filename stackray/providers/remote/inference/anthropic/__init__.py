"""`remote::anthropic`: Anthropic's Messages API."""
