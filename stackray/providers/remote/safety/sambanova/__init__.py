"""`remote::sambanova` safety: Llama Guard models hosted by SambaNova Cloud."""
