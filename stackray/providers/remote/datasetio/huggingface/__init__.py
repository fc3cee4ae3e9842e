"""`remote::huggingface`: dataset rows from the Hugging Face Hub through the `datasets` library."""
