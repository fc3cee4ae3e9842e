"""`inline::meta-reference` inference (Llama Stack 0.2.12's name): the transformers engine
with 0.2.12's config fields."""
