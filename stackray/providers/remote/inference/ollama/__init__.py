"""`remote::ollama`: an Ollama server, through its own API."""
