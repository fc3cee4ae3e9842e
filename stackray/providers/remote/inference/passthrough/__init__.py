"""`remote::passthrough`: another Llama Stack server's inference."""
