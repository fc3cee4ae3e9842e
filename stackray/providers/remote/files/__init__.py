"""Remote files providers."""
