"""Dataset IO providers that run inside stackray."""
