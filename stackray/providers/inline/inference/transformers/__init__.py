"""The `inline::transformers` inference engine: batched generation with Hugging Face models.

Importing this package is cheap; torch and transformers load when an engine is created.
"""

from .chat_format import ParsedToolCall, parse_tool_calls, render_chat, tool_call_json_schema
from .engine import GenerationChunk, GenerationRequest, TransformersEngine
from .loader import ModelSource, load_model, resolve_model_source
from .sampling import SamplingConfig

__all__ = [
    "GenerationChunk",
    "GenerationRequest",
    "ModelSource",
    "ParsedToolCall",
    "SamplingConfig",
    "TransformersEngine",
    "load_model",
    "parse_tool_calls",
    "render_chat",
    "resolve_model_source",
    "tool_call_json_schema",
]
