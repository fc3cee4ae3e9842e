"""Inline files providers."""
