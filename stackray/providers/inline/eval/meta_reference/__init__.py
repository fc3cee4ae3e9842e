"""`inline::meta-reference`: eval jobs over the stack's inference (or agents) and scoring APIs."""
