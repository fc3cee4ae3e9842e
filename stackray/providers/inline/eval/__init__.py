"""Eval providers that run inside stackray."""
