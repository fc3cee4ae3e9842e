"""`remote::sambanova`: SambaNova Cloud."""
