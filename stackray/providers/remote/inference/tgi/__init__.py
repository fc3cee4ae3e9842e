"""`remote::tgi`: Hugging Face Text Generation Inference."""
