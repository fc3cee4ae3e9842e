"""`remote::runpod`: a RunPod serverless endpoint with OpenAI's API."""
