"""`remote::gemini`: Google's Gemini API (generateContent)."""
