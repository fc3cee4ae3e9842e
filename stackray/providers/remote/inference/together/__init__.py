"""`remote::together`: Together AI."""
