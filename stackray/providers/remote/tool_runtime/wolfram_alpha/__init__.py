"""`remote::wolfram-alpha`: computational answers from Wolfram|Alpha."""
