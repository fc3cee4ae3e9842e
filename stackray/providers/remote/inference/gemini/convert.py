"""OpenAI chat requests and answers to and from Gemini's generateContent.

- System messages become `systemInstruction`; user / assistant turns `contents` with
  roles user / model (turns of one role merged); an assistant's tool calls become
  `functionCall` parts, tool messages `functionResponse` parts named after the call they
  answer; images given as data URLs become `inlineData`.
- Sampling, max_tokens and stop go in `generationConfig`; a JSON schema response format
  becomes `responseMimeType: application/json` with `responseSchema`; tools become
  `functionDeclarations`, tool_choice auto / required / none / a named function the
  `functionCallingConfig` modes AUTO / ANY / NONE / ANY with that one name.
- An answer's first candidate gives the message (text parts joined, function calls as tool
  calls), its `finishReason` the finish reason, `usageMetadata` the usage; a streamed
  answer is the same objects, one per event.
"""

from __future__ import annotations

import json
import time
from typing import Any

from stackray.api.errors import BadRequestError

MODEL_PREFIX = "gemini/"

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}


def model_name(model: str) -> str:
    return model.removeprefix(MODEL_PREFIX).removeprefix("models/")


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content or []):
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": part["text"]})
        elif kind == "image_url":
            url = str((part.get("image_url") or {}).get("url") or "")
            if not (url.startswith("data:") and ";base64," in url):
                raise BadRequestError(
                    f"{where}[{i}]: remote::gemini takes images as base64 data URLs", field=where
                )
            mime, data = url[5:].split(";base64,", 1)
            parts.append({"inlineData": {"mimeType": mime, "data": data}})
        else:
            raise BadRequestError(f"{where}[{i}]: unsupported content type {kind!r}", field=where)
    return parts


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if p.get("type") == "text")


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw or "{}")
    except json.JSONDecodeError:
        raise BadRequestError("tool call arguments are not JSON", field="messages") from None
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def generate_request(body: dict[str, Any]) -> dict[str, Any]:
    """The body of `models/{model}:generateContent` for an OpenAI chat completion body."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for i, message in enumerate(body.get("messages") or []):
        where = f"messages[{i}].content"
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
        elif role == "user":
            add("user", _parts(message.get("content"), where))
        elif role == "assistant":
            parts = _parts(message.get("content"), where)
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                names[str(call.get("id"))] = str(function.get("name"))
                parts.append(
                    {
                        "functionCall": {
                            "name": function.get("name"),
                            "args": _arguments(function.get("arguments")),
                        }
                    }
                )
            add("model", parts)
        elif role == "tool":
            call_id = str(message.get("tool_call_id"))
            if call_id not in names:
                raise BadRequestError(
                    f"messages[{i}]: tool_call_id {call_id!r} answers no earlier tool call",
                    field="messages",
                )
            text = _text(message.get("content"))
            try:
                result = json.loads(text)
            except json.JSONDecodeError:
                result = text
            if not isinstance(result, dict):
                result = {"result": result}
            add("user", [{"functionResponse": {"name": names[call_id], "response": result}}])
        else:
            raise BadRequestError(f"messages[{i}]: unknown role {role!r}", field="messages")
    config: dict[str, Any] = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK")):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            config["responseSchema"] = schema
    elif response_format.get("type") == "json_object":
        config["responseMimeType"] = "application/json"
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    if config:
        out["generationConfig"] = config
    tools = body.get("tools")
    if tools:
        out["tools"] = [
            {
                "functionDeclarations": [
                    {
                        "name": t["function"]["name"],
                        "description": t["function"].get("description") or "",
                        **(
                            {"parameters": t["function"]["parameters"]}
                            if t["function"].get("parameters")
                            else {}
                        ),
                    }
                    for t in tools
                ]
            }
        ]
        choice = body.get("tool_choice")
        mode: dict[str, Any] | None = None
        if choice == "required":
            mode = {"mode": "ANY"}
        elif choice == "none":
            mode = {"mode": "NONE"}
        elif isinstance(choice, dict):
            mode = {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
        if mode is not None:
            out["toolConfig"] = {"functionCallingConfig": mode}
    return out


def _usage(meta: Any) -> dict[str, int] | None:
    if not isinstance(meta, dict):
        return None
    prompt = int(meta.get("promptTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(meta.get("totalTokenCount") or prompt + completion),
    }


def _message(candidate: dict[str, Any], first_call: int) -> tuple[str, list[dict[str, Any]]]:
    parts = (candidate.get("content") or {}).get("parts") or []
    text = "".join(p.get("text", "") for p in parts if "text" in p and not p.get("thought"))
    calls = [
        {
            "index": first_call + i,
            "id": p["functionCall"].get("id") or f"call_{first_call + i}",
            "type": "function",
            "function": {
                "name": p["functionCall"]["name"],
                "arguments": json.dumps(p["functionCall"].get("args") or {}),
            },
        }
        for i, p in enumerate(x for x in parts if "functionCall" in x)
    ]
    return text, calls


def _finish(candidate: dict[str, Any], calls: list[dict[str, Any]]) -> str | None:
    reason = candidate.get("finishReason")
    if reason is None:
        return None
    if calls:
        return "tool_calls"
    return _FINISH.get(reason, "stop")


def chat_answer(data: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat completion for a generateContent answer."""
    candidates = data.get("candidates") or []
    if not candidates:
        reason = (data.get("promptFeedback") or {}).get("blockReason")
        raise BadRequestError(f"Gemini answered no candidate (prompt blocked: {reason})")
    candidate = candidates[0]
    text, calls = _message(candidate, 0)
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
    return {
        "id": str(data.get("responseId") or "gemini"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(data.get("modelVersion") or model),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish(candidate, calls) or "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(data.get("usageMetadata")),
    }


class StreamConverter:
    """Each streamed generateContent object as an OpenAI chat chunk."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.calls = 0

    def feed(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        candidates = data.get("candidates") or []
        if not candidates:
            return []
        candidate = candidates[0]
        text, calls = _message(candidate, self.calls)
        self.calls += len(calls)
        delta: dict[str, Any] = {"role": "assistant"}
        if text:
            delta["content"] = text
        if calls:
            delta["tool_calls"] = calls
        finish = _finish(candidate, calls)
        if finish == "stop" and self.calls:
            finish = "tool_calls"
        chunk: dict[str, Any] = {
            "id": str(data.get("responseId") or "gemini"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": str(data.get("modelVersion") or self.model),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if finish is not None:
            chunk["usage"] = _usage(data.get("usageMetadata"))
        return [chunk]
