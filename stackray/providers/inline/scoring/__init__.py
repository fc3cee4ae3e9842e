"""Scoring providers that run inside stackray."""
