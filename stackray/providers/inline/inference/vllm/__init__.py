"""`inline::vllm`: the vLLM engine inside a model-server deployment on GPU actors.

Importing this package is cheap: vllm (the optional `.[gpu]` extra) loads when an engine
is created, on the GPU replica.
"""
