"""`remote::groq`: GroqCloud."""
