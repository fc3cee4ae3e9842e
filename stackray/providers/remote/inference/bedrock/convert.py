"""OpenAI-shaped request bodies as Bedrock Converse requests, and Converse answers as
OpenAI-shaped answers.

The adapter translates the Llama Stack routes to OpenAI bodies as every remote provider
does; these functions take it from there, so both API surfaces reach Bedrock through one
conversion:

- messages: `system` -> `system` blocks; `user` text and images (data URLs) -> content
  blocks; `assistant` `tool_calls` -> `toolUse` blocks; `tool` messages -> `toolResult`
  blocks of a user message (consecutive messages of one role merge: Converse wants the
  roles to alternate);
- `tools` -> `toolConfig.tools[].toolSpec`, `tool_choice` -> `auto` / `any` / `tool`;
- `response_format` (JSON schema / JSON object) -> one forced tool taking the schema,
  whose input comes back as the message text;
- answers: `toolUse` blocks -> `tool_calls`, `stopReason` -> `finish_reason`, `usage`;
- streams: `converse_stream` events -> chat completion chunks, tool-use input deltas as
  `tool_calls` argument deltas.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from stackray.api.errors import BadRequestError

JSON_TOOL = "json_response"
"""The tool a `response_format` becomes: the model answers by calling it."""

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

_IMAGE_FORMATS = {"png", "jpeg", "gif", "webp"}
_DATA_URL = re.compile(r"^data:image/(?P<fmt>[a-zA-Z]+);base64,(?P<data>.*)$", re.DOTALL)
_UNSUPPORTED = ("logprobs", "top_logprobs", "logit_bias", "functions", "function_call")


@dataclass
class ConverseCall:
    """One Converse request, and how to read its answer."""

    params: dict[str, Any]
    json_mode: bool = False
    """The answer is the input of the `JSON_TOOL` call, to be returned as text."""
    model: str = ""


# ---- requests ----------------------------------------------------------------------------


def _text_of(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise BadRequestError(f"{where}[{i}] must be text here", field=where)
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise BadRequestError(f"{where} must be a string or a list of parts", field=where)


def _image_block(url: str, where: str) -> dict[str, Any]:
    match = _DATA_URL.match(url)
    if match is None:
        raise BadRequestError(
            f"{where}: Bedrock takes images as data (data:image/png;base64,...), not URLs",
            field=where,
        )
    fmt = match["fmt"].lower().replace("jpg", "jpeg")
    if fmt not in _IMAGE_FORMATS:
        raise BadRequestError(
            f"{where}: image/{fmt} is not one of {sorted(_IMAGE_FORMATS)}", field=where
        )
    try:
        data = base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(f"{where}: the image is not valid base64", field=where) from None
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _content_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise BadRequestError(f"{where} must be a string or a list of parts", field=where)
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"text": str(part["text"])})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            blocks.append(_image_block(str(image.get("url", "")), f"{where}[{i}]"))
        else:
            raise BadRequestError(f"{where}[{i}]: unsupported part type {kind!r}", field=where)
    return blocks


def _tool_use_block(call: Any, where: str) -> dict[str, Any]:
    if not isinstance(call, dict):
        raise BadRequestError(f"{where} must be an object", field=where)
    function = call.get("function") or {}
    name = function.get("name")
    if not name:
        raise BadRequestError(f"{where}.function.name is required", field=where)
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise BadRequestError(
            f"{where}.function.arguments must be a JSON object, got {raw!r}", field=where
        ) from None
    if not isinstance(arguments, dict):
        raise BadRequestError(f"{where}.function.arguments must be a JSON object", field=where)
    return {
        "toolUse": {
            "toolUseId": str(call.get("id") or f"call_{uuid.uuid4().hex[:24]}"),
            "name": str(name),
            "input": arguments,
        }
    }


def messages_to_converse(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages) of Converse for OpenAI chat messages."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_of(message.get("content"), f"{where}.content")
            if text:
                system.append({"text": text})
        elif role == "user":
            add("user", _content_blocks(message.get("content"), f"{where}.content"))
        elif role == "assistant":
            blocks = _content_blocks(message.get("content"), f"{where}.content")
            for j, call in enumerate(message.get("tool_calls") or []):
                blocks.append(_tool_use_block(call, f"{where}.tool_calls[{j}]"))
            add("assistant", blocks)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not call_id:
                raise BadRequestError(f"{where}.tool_call_id is required", field=where)
            text = _text_of(message.get("content"), f"{where}.content")
            result = {"toolUseId": str(call_id), "content": [{"text": text or "(empty)"}]}
            add("user", [{"toolResult": result}])
        else:
            raise BadRequestError(f"{where}.role: unknown role {role!r}", field=where)
    if not out:
        raise BadRequestError("messages: at least one user message is needed", field="messages")
    if out[0]["role"] != "user":
        # Converse starts with the user; an empty turn keeps an assistant prefix.
        out.insert(0, {"role": "user", "content": [{"text": "(continue)"}]})
    return system, out


def _tool_spec(tool: Any, where: str) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not function.get("name"):
        raise BadRequestError(f"{where}: a function tool with a name is needed", field="tools")
    spec: dict[str, Any] = {
        "name": function["name"],
        "inputSchema": {"json": function.get("parameters") or {"type": "object", "properties": {}}},
    }
    if function.get("description"):
        spec["description"] = function["description"]
    return {"toolSpec": spec}


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    """Converse's tool choice; None for 'none' (no tool may be called)."""
    if choice in (None, "auto"):
        return {"auto": {}}
    if choice == "required":
        return {"any": {}}
    if choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"tool": {"name": name}}
    if isinstance(choice, str):
        return {"tool": {"name": choice}}
    raise BadRequestError(f"tool_choice: cannot use {choice!r}", field="tool_choice")


def _json_schema_of(response_format: Any) -> dict[str, Any] | None:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema")
        return schema if isinstance(schema, dict) else {"type": "object"}
    raise BadRequestError(
        f"response_format: Bedrock cannot honour type {kind!r}", field="response_format"
    )


def chat_to_converse(body: dict[str, Any]) -> ConverseCall:
    """The Converse request for an OpenAI chat completion body."""
    for name in _UNSUPPORTED:
        if body.get(name):
            raise BadRequestError(f"{name}: Bedrock's Converse API has no such option", field=name)
    if (body.get("n") or 1) != 1:
        raise BadRequestError("n: Bedrock answers with one choice", field="n")
    model = str(body.get("model") or "")
    system, messages = messages_to_converse(list(body.get("messages") or []))
    params: dict[str, Any] = {"modelId": model, "messages": messages}
    if system:
        params["system"] = system
    inference: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        inference["maxTokens"] = int(max_tokens)
    if body.get("temperature") is not None:
        inference["temperature"] = float(body["temperature"])
    if body.get("top_p") is not None:
        inference["topP"] = float(body["top_p"])
    stop = body.get("stop")
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if inference:
        params["inferenceConfig"] = inference

    tools = body.get("tools") or []
    schema = _json_schema_of(body.get("response_format"))
    uses_tools = any(
        "toolUse" in block or "toolResult" in block for m in messages for block in m["content"]
    )
    if schema is not None:
        if tools:
            raise BadRequestError(
                "response_format: Bedrock cannot combine a JSON response format with tools",
                field="response_format",
            )
        spec = {
            "name": JSON_TOOL,
            "description": "Answer with a JSON value matching this schema.",
            "inputSchema": {"json": schema},
        }
        params["toolConfig"] = {
            "tools": [{"toolSpec": spec}],
            "toolChoice": {"tool": {"name": JSON_TOOL}},
        }
        return ConverseCall(params, json_mode=True, model=model)
    if tools:
        config: dict[str, Any] = {
            "tools": [_tool_spec(t, f"tools[{i}]") for i, t in enumerate(tools)]
        }
        choice = _tool_choice(body.get("tool_choice"))
        if choice is not None:
            config["toolChoice"] = choice
            params["toolConfig"] = config
        elif uses_tools:
            params["toolConfig"] = config  # the history's tool blocks need their specs
    elif uses_tools:
        raise BadRequestError(
            "tools: the messages hold tool calls, so Bedrock needs the tools' definitions",
            field="tools",
        )
    return ConverseCall(params, model=model)


def completion_to_converse(body: dict[str, Any]) -> ConverseCall:
    """A completion request as one user turn (Converse has no raw-prompt completion)."""
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise BadRequestError("prompt: Bedrock takes one text prompt", field="prompt")
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise BadRequestError("prompt: a non-empty text is needed", field="prompt")
    chat = {k: v for k, v in body.items() if k not in ("prompt", "echo", "suffix", "best_of")}
    if body.get("echo") or body.get("suffix"):
        raise BadRequestError("echo/suffix: Bedrock cannot honour them", field="echo")
    if isinstance(chat.get("logprobs"), int) and chat["logprobs"]:
        raise BadRequestError(
            "logprobs: Bedrock's Converse API has no such option", field="logprobs"
        )
    chat.pop("logprobs", None)
    chat["messages"] = [{"role": "user", "content": prompt}]
    return chat_to_converse(chat)


# ---- answers -----------------------------------------------------------------------------


def _usage(usage: Any) -> dict[str, int]:
    usage = usage or {}
    prompt = int(usage.get("inputTokens") or 0)
    completion = int(usage.get("outputTokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(usage.get("totalTokens") or prompt + completion),
    }


def _response_id(response: dict[str, Any], prefix: str) -> str:
    request_id = (response.get("ResponseMetadata") or {}).get("RequestId")
    return f"{prefix}-{request_id or uuid.uuid4().hex}"


def chat_from_converse(call: ConverseCall, response: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat completion for a Converse answer."""
    blocks = ((response.get("output") or {}).get("message") or {}).get("content") or []
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            if call.json_mode and use.get("name") == JSON_TOOL:
                texts.append(json.dumps(use.get("input")))
                continue
            calls.append(
                {
                    "id": use["toolUseId"],
                    "type": "function",
                    "function": {"name": use["name"], "arguments": json.dumps(use.get("input"))},
                }
            )
    finish = FINISH_REASONS.get(response.get("stopReason") or "", "stop")
    if call.json_mode and finish == "tool_calls":
        finish = "stop"
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": _response_id(response, "chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _usage(response.get("usage")),
    }


def completion_from_converse(call: ConverseCall, response: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI text completion for a Converse answer."""
    chat = chat_from_converse(call, response)
    choice = chat["choices"][0]
    return {
        "id": chat["id"].replace("chatcmpl", "cmpl", 1),
        "object": "text_completion",
        "created": chat["created"],
        "model": call.model,
        "choices": [
            {
                "index": 0,
                "text": choice["message"]["content"] or "",
                "finish_reason": choice["finish_reason"],
            }
        ],
        "usage": chat["usage"],
    }


@dataclass
class ConverseStreamTranslator:
    """`converse_stream` events as OpenAI chat completion chunks.

    A `toolUse` block opens with its id and name (`contentBlockStart`) and its input
    arrives as JSON text in pieces (`contentBlockDelta`); each becomes an OpenAI
    `tool_calls` delta with the call's `index`. In JSON mode the input pieces are the
    answer's text instead.
    """

    call: ConverseCall
    include_usage: bool = True
    completion: bool = False
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))
    _tool_index: dict[int, int] = field(default_factory=dict)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if self.completion:
            return {
                "id": self.id,
                "object": "text_completion",
                "created": self.created,
                "model": self.call.model,
                "choices": [
                    {"index": 0, "text": delta.get("content") or "", "finish_reason": finish}
                ],
            }
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.call.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks one event amounts to (none for bookkeeping events)."""
        if "messageStart" in event:
            return [] if self.completion else [self._chunk({"role": "assistant", "content": ""})]
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = (start.get("start") or {}).get("toolUse")
            if use is None or (self.call.json_mode and use.get("name") == JSON_TOOL):
                return []
            index = self._tool_index.setdefault(
                int(start.get("contentBlockIndex", 0)), len(self._tool_index)
            )
            piece = {
                "index": index,
                "id": use["toolUseId"],
                "type": "function",
                "function": {"name": use["name"], "arguments": ""},
            }
            return [self._chunk({"tool_calls": [piece]})]
        if "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            delta = body.get("delta") or {}
            if "text" in delta:
                return [self._chunk({"content": delta["text"]})] if delta["text"] else []
            if "toolUse" in delta:
                text = str(delta["toolUse"].get("input") or "")
                block = int(body.get("contentBlockIndex", 0))
                if block not in self._tool_index:  # the JSON answer's tool
                    return [self._chunk({"content": text})] if text else []
                piece = {"index": self._tool_index[block], "function": {"arguments": text}}
                return [self._chunk({"tool_calls": [piece]})]
            return []
        if "messageStop" in event:
            finish = FINISH_REASONS.get(event["messageStop"].get("stopReason") or "", "stop")
            if self.call.json_mode and finish == "tool_calls":
                finish = "stop"
            return [self._chunk({}, finish)]
        if "metadata" in event and self.include_usage:
            chunk = self._chunk({})
            chunk["choices"] = []
            chunk["usage"] = _usage(event["metadata"].get("usage"))
            return [chunk]
        return []


# ---- embeddings --------------------------------------------------------------------------


def is_cohere(model_id: str) -> bool:
    """Cohere's embedding models take a batch of `texts`; Titan's one `inputText`."""
    return "cohere." in model_id


def embedding_bodies(
    model_id: str, texts: list[str], dimensions: int | None, input_type: str | None
) -> list[dict[str, Any]]:
    """The `invoke_model` bodies embedding `texts` (one per text for Titan)."""
    if is_cohere(model_id):
        if dimensions is not None:
            raise BadRequestError(
                f"dimensions: {model_id} has a fixed output size", field="dimensions"
            )
        return [{"texts": texts, "input_type": input_type or "search_document"}]
    bodies = []
    for text in texts:
        body: dict[str, Any] = {"inputText": text}
        if dimensions is not None:
            body["dimensions"] = dimensions
        bodies.append(body)
    return bodies


def embeddings_from_answers(
    model_id: str, answers: list[dict[str, Any]]
) -> tuple[list[list[float]], int]:
    """(vectors, input tokens) from the `invoke_model` answers."""
    vectors: list[list[float]] = []
    tokens = 0
    for answer in answers:
        if is_cohere(model_id):
            found = answer["embeddings"]
            if isinstance(found, dict):  # embedding_types asked: {"float": [...]}
                found = found["float"]
            vectors.extend([float(x) for x in v] for v in found)
        else:
            vectors.append([float(x) for x in answer["embedding"]])
            tokens += int(answer.get("inputTextTokenCount") or 0)
    return vectors, tokens
