"""Dataset IO providers backed by an external service."""
