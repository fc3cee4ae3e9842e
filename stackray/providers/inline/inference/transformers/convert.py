"""Conversion between the API's request/response models and the engine's plain data.

Both API surfaces (Llama Stack's and OpenAI's) come down to one `ChatPlan`: OpenAI-style
message dicts, OpenAI function tools, a tool choice, and a `GenerationRequest`-to-be.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stackray.api.common import (
    CompletionMessage,
    GrammarResponseFormat,
    JsonSchemaResponseFormat,
    SamplingParams,
    StopReason,
    SystemMessage,
    TextContentItem,
    TokenLogProbs,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    ToolResponseMessage,
    UserMessage,
)
from stackray.api.errors import BadRequestError
from stackray.api.inference import ChatCompletionRequest, OpenAIChatCompletionRequest

FINISH_TO_STOP = {
    "eos": StopReason.end_of_turn,
    "stop": StopReason.end_of_turn,
    "length": StopReason.out_of_tokens,
}
FINISH_TO_OPENAI = {"eos": "stop", "stop": "stop", "length": "length"}


@dataclass
class ChatPlan:
    """What to render and how to sample, independent of the API surface."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    tool_choice: str | None  # "auto" | "required" | "none" | a tool name
    sampling: dict[str, Any] = field(default_factory=dict)
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    logprobs_top_k: int = 0
    json_schema: dict[str, Any] | None = None
    grammar: str | None = None

    @property
    def tool_names(self) -> set[str]:
        return {t["function"]["name"] for t in self.tools or []}

    @property
    def forces_tool_call(self) -> bool:
        return bool(self.tools) and self.tool_choice not in (None, "auto", "none")


# ---- content ---------------------------------------------------------------------------


def content_text(content: Any, field_name: str = "content") -> str:
    """Plain text of interleaved content; images are refused (text-only models)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(content_text(c, field_name) for c in content)
    if isinstance(content, TextContentItem):
        return content.text
    kind = getattr(content, "type", None)
    if kind == "text":
        return str(content.text)
    raise BadRequestError(
        f"this model takes text only; got {kind or type(content).__name__} content",
        field=field_name,
    )


# ---- Llama Stack -> plan ---------------------------------------------------------------


def tool_definition_to_openai(tool: ToolDefinition) -> dict[str, Any]:
    name = str(getattr(tool.tool_name, "value", tool.tool_name))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for pname, p in (tool.parameters or {}).items():
        prop: dict[str, Any] = {"type": _json_type(p.param_type)}
        if p.description:
            prop["description"] = p.description
        if p.default is not None:
            prop["default"] = p.default
        properties[pname] = prop
        if p.required is not False:
            required.append(pname)
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": tool.description or "",
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


_JSON_TYPES = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "list": "array",
    "array": "array",
    "dict": "object",
    "object": "object",
}


def _json_type(param_type: str) -> str:
    return _JSON_TYPES.get(param_type.lower(), "string")


def _tool_call_to_openai(call: ToolCall) -> dict[str, Any]:
    args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
    return {
        "id": call.call_id,
        "type": "function",
        "function": {
            "name": str(getattr(call.tool_name, "value", call.tool_name)),
            "arguments": args,
        },
    }


def llama_messages_to_dicts(
    messages: list[Any], convert_content: Callable[[Any, str], Any] = content_text
) -> list[dict[str, Any]]:
    """OpenAI-style message dicts. `convert_content(content, field)` gives each message's
    content: plain text by default; remote providers pass one that keeps images as parts."""
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}].content"
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": convert_content(m.content, where)})
        elif isinstance(m, UserMessage):
            body = convert_content(m.content, where)
            if m.context is not None:
                context = content_text(m.context, f"messages[{i}].context")
                if isinstance(body, str):
                    body = f"{body}\n\n{context}"
                else:
                    body = [*body, {"type": "text", "text": f"\n\n{context}"}]
            out.append({"role": "user", "content": body})
        elif isinstance(m, CompletionMessage):
            msg: dict[str, Any] = {
                "role": "assistant",
                "content": convert_content(m.content, where),
            }
            if m.tool_calls:
                msg["tool_calls"] = [_tool_call_to_openai(c) for c in m.tool_calls]
            out.append(msg)
        elif isinstance(m, ToolResponseMessage):
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": m.call_id,
                    "content": convert_content(m.content, where),
                }
            )
        else:  # pragma: no cover - the request model admits only the four roles
            raise BadRequestError(f"unsupported message {type(m).__name__}", field=f"messages[{i}]")
    return out


def sampling_from_params(
    params: SamplingParams | None,
) -> tuple[dict[str, Any], int | None, list[str]]:
    params = params or SamplingParams()
    strategy = params.strategy
    sampling: dict[str, Any] = {"strategy": strategy.type}
    if strategy.type == "top_p":
        temperature = strategy.temperature if strategy.temperature is not None else 1.0
        if temperature <= 0:
            sampling = {"strategy": "greedy"}
        else:
            sampling.update(
                temperature=temperature,
                top_p=strategy.top_p if strategy.top_p is not None else 0.95,
            )
            if not 0 < sampling["top_p"] <= 1:
                raise BadRequestError(
                    "top_p must be in (0, 1]", field="sampling_params.strategy.top_p"
                )
    elif strategy.type == "top_k":
        if strategy.top_k < 1:
            raise BadRequestError(
                "top_k must be at least 1", field="sampling_params.strategy.top_k"
            )
        sampling.update(top_k=strategy.top_k, temperature=1.0)
    if params.repetition_penalty is not None:
        if params.repetition_penalty <= 0:
            raise BadRequestError(
                "repetition_penalty must be positive", field="sampling_params.repetition_penalty"
            )
        sampling["repetition_penalty"] = params.repetition_penalty
    max_tokens = params.max_tokens or None
    if max_tokens is not None and max_tokens < 0:
        raise BadRequestError("max_tokens must not be negative", field="sampling_params.max_tokens")
    return sampling, max_tokens, list(params.stop or [])


def response_format_schema(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema of a `json_schema` response format."""
    if isinstance(response_format, JsonSchemaResponseFormat):
        return response_format.json_schema
    return None


def response_format_grammar(response_format: Any) -> str | None:
    """The EBNF text of a `grammar` response format (its `bnf` maps rule names to GBNF
    rule bodies, `root` the start rule)."""
    if isinstance(response_format, GrammarResponseFormat):
        from stackray.providers.inline.inference.transformers.constraints import ebnf_from_rules

        return ebnf_from_rules(response_format.bnf)
    return None


def plan_from_chat_request(request: ChatCompletionRequest) -> ChatPlan:
    sampling, max_tokens, stop = sampling_from_params(request.sampling_params)
    tool_config = request.tool_config
    choice = tool_config.tool_choice if tool_config is not None else ToolChoice.auto
    choice_str = choice.value if isinstance(choice, ToolChoice) else choice
    tools = [tool_definition_to_openai(t) for t in request.tools or []] or None
    if tools is None or choice_str == "none":
        tools, choice_str = None, None
    return ChatPlan(
        messages=llama_messages_to_dicts(request.messages),
        tools=tools,
        tool_choice=choice_str,
        sampling=sampling,
        max_tokens=max_tokens,
        stop=stop,
        logprobs_top_k=_logprobs_k(request.logprobs),
        json_schema=response_format_schema(request.response_format),
        grammar=response_format_grammar(request.response_format),
    )


def _logprobs_k(config: Any) -> int:
    if config is None:
        return 0
    k = config.top_k or 0
    if k < 0 or k > 20:
        raise BadRequestError("logprobs.top_k must be between 0 and 20", field="logprobs.top_k")
    return max(k, 1)


# ---- OpenAI -> plan --------------------------------------------------------------------


def openai_sampling(request: Any, field_prefix: str = "") -> dict[str, Any]:
    temperature = request.temperature
    top_p = request.top_p
    if temperature is not None and not 0 <= temperature <= 2:
        raise BadRequestError("temperature must be between 0 and 2", field="temperature")
    if top_p is not None and not 0 < top_p <= 1:
        raise BadRequestError("top_p must be in (0, 1]", field="top_p")
    if temperature == 0:
        sampling: dict[str, Any] = {"strategy": "greedy"}
    else:
        sampling = {
            "strategy": "top_p",
            "temperature": 1.0 if temperature is None else temperature,
            "top_p": 1.0 if top_p is None else top_p,
        }
    if request.seed is not None:
        sampling["seed"] = request.seed
    if request.frequency_penalty or request.presence_penalty:
        # The closest control the engine has: a multiplicative repetition penalty.
        penalty = max(request.frequency_penalty or 0.0, request.presence_penalty or 0.0)
        if penalty > 0:
            sampling["repetition_penalty"] = 1.0 + penalty / 2
    return sampling


def openai_stop(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else list(stop)
    if len(stops) > 4:
        raise BadRequestError("at most 4 stop sequences are allowed", field="stop")
    return [s for s in stops if s]


def _check_n(n: int | None) -> None:
    if n not in (None, 1):
        raise BadRequestError("only n=1 is supported", field="n")


def openai_message_dicts(messages: list[Any]) -> list[dict[str, Any]]:
    out = []
    for i, m in enumerate(messages):
        d = m.model_dump(exclude_none=True) if hasattr(m, "model_dump") else dict(m)
        role = d.get("role")
        if role == "developer":
            d["role"] = "system"
        d["content"] = _openai_content_text(d.get("content"), f"messages[{i}].content")
        out.append(d)
    return out


def _openai_content_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.get("type") != "text":
            raise BadRequestError(
                f"this model takes text only; got {part.get('type')} content", field=where
            )
        parts.append(part.get("text", ""))
    return "".join(parts)


def plan_from_openai_chat(request: OpenAIChatCompletionRequest) -> ChatPlan:
    _check_n(request.n)
    tools = request.tools or None
    if tools is None and request.functions:
        tools = [{"type": "function", "function": f} for f in request.functions]
    for i, t in enumerate(tools or []):
        if t.get("type", "function") != "function" or "name" not in (t.get("function") or {}):
            raise BadRequestError(
                "each tool must be {type: function, function: {name, parameters}}",
                field=f"tools[{i}]",
            )
    choice_raw = request.tool_choice if request.tool_choice is not None else request.function_call
    choice: str | None = "auto"
    if isinstance(choice_raw, str):
        if choice_raw not in ("auto", "none", "required"):
            raise BadRequestError(
                "tool_choice must be auto, none, required or a function", field="tool_choice"
            )
        choice = choice_raw
    elif isinstance(choice_raw, dict):
        name = (choice_raw.get("function") or {}).get("name") or choice_raw.get("name")
        if not name:
            raise BadRequestError("tool_choice names no function", field="tool_choice")
        choice = name
    if (
        tools
        and choice not in ("auto", "none", "required")
        and choice not in {t["function"]["name"] for t in tools}
    ):
        raise BadRequestError(
            f"tool_choice names {choice!r}, which is not among the tools", field="tool_choice"
        )
    if not tools or choice == "none":
        tools, choice = None, None
    schema = None
    fmt = request.response_format
    if fmt is not None:
        if fmt.type == "json_schema":
            schema = fmt.json_schema.schema_ or {"type": "object"}
        elif fmt.type == "json_object":
            schema = {"type": "object"}
    logprobs_k = 0
    if request.logprobs:
        logprobs_k = request.top_logprobs or 1
        if not 0 <= logprobs_k <= 20:
            raise BadRequestError("top_logprobs must be between 0 and 20", field="top_logprobs")
    max_tokens = request.max_completion_tokens or request.max_tokens
    if max_tokens is not None and max_tokens < 1:
        raise BadRequestError("max_tokens must be at least 1", field="max_tokens")
    return ChatPlan(
        messages=openai_message_dicts(request.messages),
        tools=tools,
        tool_choice=choice,
        sampling=openai_sampling(request),
        max_tokens=max_tokens,
        stop=openai_stop(request.stop),
        logprobs_top_k=logprobs_k,
        json_schema=schema,
    )


# ---- results ---------------------------------------------------------------------------


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def to_llama_tool_calls(parsed: list[Any]) -> list[ToolCall]:
    return [
        ToolCall(
            call_id=new_call_id(),
            tool_name=p.name,
            arguments=p.arguments,
            arguments_json=json.dumps(p.arguments),
        )
        for p in parsed
    ]


def to_openai_tool_calls(parsed: list[Any], with_index: bool = False) -> list[dict[str, Any]]:
    calls = []
    for i, p in enumerate(parsed):
        call: dict[str, Any] = {
            "id": new_call_id(),
            "type": "function",
            "function": {"name": p.name, "arguments": json.dumps(p.arguments)},
        }
        if with_index:
            call["index"] = i
        calls.append(call)
    return calls


def llama_logprobs(entries: list[dict[str, float]] | None) -> list[TokenLogProbs] | None:
    if entries is None:
        return None
    return [TokenLogProbs(logprobs_by_token=e) for e in entries]


def openai_logprobs(
    tokens: list[str], entries: list[dict[str, float]] | None
) -> dict[str, Any] | None:
    if entries is None:
        return None
    content = []
    for token, top in zip(tokens, entries, strict=False):
        content.append(
            {
                "token": token,
                "logprob": top.get(token, max(top.values()) if top else 0.0),
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top.items()
                ],
            }
        )
    return {"content": content}
