"""`remote::fireworks`: Fireworks AI."""
