"""Builtin provider specs, one module per API."""
