"""`remote::watsonx`: IBM watsonx.ai."""
