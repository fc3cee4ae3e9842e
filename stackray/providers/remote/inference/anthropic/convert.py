"""OpenAI chat requests and answers to and from Anthropic's Messages API.

- System messages become the top-level `system`; tool calls of an assistant message
  become `tool_use` blocks, tool messages `tool_result` blocks of a user turn; turns of
  one role are merged (Anthropic wants them alternating).
- `tools` become `{name, description, input_schema}`; `tool_choice` auto / required /
  a named function / none become Anthropic's auto / any / tool / none.
- An answer's `text` and `tool_use` blocks become the message's content and tool calls;
  `stop_reason` end_turn / stop_sequence / max_tokens / tool_use the finish reason.
- A stream's events (message_start, content_block_start / delta / stop, message_delta)
  become OpenAI chunks, tool use as indexed tool-call pieces.
"""

from __future__ import annotations

import json
import time
from typing import Any

from stackray.api.errors import BadRequestError

MODEL_PREFIX = "anthropic/"
"""Llama Stack's templates name models with the routing prefix of litellm."""

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}


def model_name(model: str) -> str:
    return model.removeprefix(MODEL_PREFIX)


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for i, part in enumerate(content or []):
        if part.get("type") != "text":
            raise BadRequestError(f"{where}[{i}]: only text goes here", field=where)
        parts.append(part["text"])
    return "".join(parts)


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content or []):
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            url = str((part.get("image_url") or {}).get("url") or "")
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                blocks.append(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": media, "data": data},
                    }
                )
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
        else:
            raise BadRequestError(f"{where}[{i}]: unsupported content type {kind!r}", field=where)
    return blocks


def _arguments(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw or "{}")
    except json.JSONDecodeError:
        raise BadRequestError("tool call arguments are not JSON", field="messages") from None
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def messages_request(body: dict[str, Any], default_max_tokens: int) -> dict[str, Any]:
    """The body of `POST /v1/messages` for an OpenAI chat completion body."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for i, message in enumerate(body.get("messages") or []):
        where = f"messages[{i}].content"
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content"), where))
        elif role == "user":
            add("user", _blocks(message.get("content"), where))
        elif role == "assistant":
            blocks = _blocks(message.get("content"), where)
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id") or f"toolu_{i}",
                        "name": function.get("name"),
                        "input": _arguments(function.get("arguments")),
                    }
                )
            add("assistant", blocks)
        elif role == "tool":
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message.get("tool_call_id"),
                        "content": _text(message.get("content"), where),
                    }
                ],
            )
        else:
            raise BadRequestError(f"messages[{i}]: unknown role {role!r}", field="messages")
    out: dict[str, Any] = {
        "model": model_name(str(body["model"])),
        "messages": turns,
        "max_tokens": body.get("max_tokens")
        or body.get("max_completion_tokens")
        or default_max_tokens,
    }
    if system:
        out["system"] = "\n\n".join(system)
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("response_format") and body["response_format"].get("type") != "text":
        raise BadRequestError(
            "remote::anthropic takes no response_format; ask for JSON in the prompt",
            field="response_format",
        )
    tools = body.get("tools")
    if tools:
        out["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description") or "",
                "input_schema": t["function"].get("parameters") or {"type": "object"},
            }
            for t in tools
        ]
        choice = body.get("tool_choice")
        if choice == "required":
            out["tool_choice"] = {"type": "any"}
        elif choice == "none":
            out["tool_choice"] = {"type": "none"}
        elif isinstance(choice, dict):
            out["tool_choice"] = {"type": "tool", "name": choice["function"]["name"]}
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    return out


def _usage(usage: Any) -> dict[str, int]:
    prompt = int((usage or {}).get("input_tokens") or 0)
    completion = int((usage or {}).get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def chat_answer(data: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat completion for a Messages API answer."""
    text = "".join(b.get("text", "") for b in data["content"] if b.get("type") == "text")
    calls = [
        {
            "id": b["id"],
            "type": "function",
            "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {})},
        }
        for b in data["content"]
        if b.get("type") == "tool_use"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": data["id"],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("model") or "",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _FINISH.get(data.get("stop_reason") or "end_turn", "stop"),
                "logprobs": None,
            }
        ],
        "usage": _usage(data.get("usage")),
    }


class StreamConverter:
    """The events of one streamed Messages API answer as OpenAI chat chunks."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.input_tokens = 0
        self.tools: dict[int, int] = {}
        """Anthropic content block index -> OpenAI tool call index."""

    def _chunk(
        self, delta: dict[str, Any], finish: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = str(message.get("id") or "")
            self.model = str(message.get("model") or "")
            self.input_tokens = int((message.get("usage") or {}).get("input_tokens") or 0)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self.tools)
                self.tools[int(event["index"])] = index
                call = {
                    "index": index,
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text") or ""})]
            if delta.get("type") == "input_json_delta":
                index = self.tools[int(event["index"])]
                piece = {"index": index, "function": {"arguments": delta.get("partial_json") or ""}}
                return [self._chunk({"tool_calls": [piece]})]
            return []
        if kind == "message_delta":
            reason = (event.get("delta") or {}).get("stop_reason") or "end_turn"
            usage = _usage({"input_tokens": self.input_tokens, **(event.get("usage") or {})})
            return [self._chunk({}, _FINISH.get(reason, "stop"), usage=usage)]
        return []  # ping, content_block_stop, message_stop
