"""`remote::cerebras`: Cerebras Inference."""
