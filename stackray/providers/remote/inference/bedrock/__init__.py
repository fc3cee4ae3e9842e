"""`remote::bedrock`: Amazon Bedrock Runtime (Converse API, and InvokeModel for embeddings)."""
