"""`inline::braintrust`: the autoevals scorers (factuality and the RAGAS metrics), their
judge and embedding calls served by this stack's own models."""
