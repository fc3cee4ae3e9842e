"""`remote::hf::serverless` and `remote::hf::endpoint`: models served by Hugging Face
(its serverless Inference API, or a dedicated Inference Endpoint), both of which speak
TGI's protocol."""
