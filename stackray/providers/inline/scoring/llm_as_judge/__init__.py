"""`inline::llm-as-judge`: scores given by a judge model through the Inference API."""
