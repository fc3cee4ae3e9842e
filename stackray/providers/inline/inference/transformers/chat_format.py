"""Chat prompts and tool calls for models served by the transformers engine.

Messages and tools come in OpenAI shape. When a model's chat template knows about tools (it
mentions `tools`), they are handed to the template. When it does not (SmolLM2's does not), the
tools are described in the system message in the Hermes / Qwen style: signatures inside
`<tools></tools>`, and the model is asked to answer with

    <tool_call>
    {"name": "...", "arguments": {...}}
    </tool_call>

Earlier tool calls in the history are rendered the same way, and tool results as
`<tool_response>` blocks in a user turn, so the model sees one consistent convention.
`parse_tool_calls` reads that format back, and also bare JSON objects with a name and
arguments, which small models often produce instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from stackray.api.errors import BadRequestError

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"

_TOOL_BLOCK_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


@dataclass
class ParsedToolCall:
    """One tool call found in generated text."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw: str = ""


def template_supports_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders a `tools` argument itself."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: the "tool_use" one counts
        return "tool_use" in template or any("tools" in t for t in template.values())
    return isinstance(template, str) and "tools" in template


def _content_text(content: Any) -> str:
    """Message content as a string; OpenAI content-part lists keep their text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return str(content)


def _arguments_dict(arguments: Any) -> Any:
    """OpenAI sends arguments as a JSON string; templates and prompts want the object."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return arguments
    return arguments if arguments is not None else {}


def _call_name_args(call: dict[str, Any]) -> tuple[str, Any]:
    fn = call.get("function")
    if not isinstance(fn, dict):
        fn = call
    return str(fn.get("name", "")), _arguments_dict(fn.get("arguments", {}))


def format_tool_call(name: str, arguments: Any) -> str:
    """The textual form of one tool call, as the model is asked to write it."""
    payload = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}\n{payload}\n{TOOL_CALL_CLOSE}"


def _tool_signature(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function", tool)
    sig: dict[str, Any] = {"name": fn.get("name")}
    if fn.get("description"):
        sig["description"] = fn["description"]
    sig["parameters"] = fn.get("parameters") or {"type": "object", "properties": {}}
    return {"type": "function", "function": sig}


def tool_names(tools: list[dict[str, Any]] | None) -> set[str]:
    """The function names declared in OpenAI-style tool dicts."""
    names = set()
    for tool in tools or []:
        fn = tool.get("function", tool)
        if isinstance(fn, dict) and fn.get("name"):
            names.add(str(fn["name"]))
    return names


def _named_choice(tool_choice: Any) -> str | None:
    """The tool name forced by `tool_choice`, if it names one (string or OpenAI dict)."""
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function")
        if isinstance(fn, dict) and fn.get("name"):
            return str(fn["name"])
        return str(tool_choice["name"]) if tool_choice.get("name") else None
    if isinstance(tool_choice, str) and tool_choice not in ("auto", "required", "none", ""):
        return tool_choice
    return None


def tools_system_prompt(tools: list[dict[str, Any]], tool_choice: Any = None) -> str:
    """The system-prompt section that teaches a template-less model to call tools."""
    lines = [
        "# Tools",
        "",
        "You may call one or more functions to assist with the user query.",
        "",
        "You are provided with function signatures within <tools></tools> XML tags:",
        "<tools>",
    ]
    lines += [json.dumps(_tool_signature(t), ensure_ascii=False) for t in tools]
    lines += [
        "</tools>",
        "",
        "For each function call, return a json object with function name and arguments "
        "within <tool_call></tool_call> XML tags:",
        "<tool_call>",
        '{"name": <function-name>, "arguments": <args-json-object>}',
        "</tool_call>",
    ]
    named = _named_choice(tool_choice)
    if named:
        lines += ["", f"You must call the function `{named}`."]
    elif tool_choice == "required":
        lines += ["", "You must call at least one function."]
    return "\n".join(lines)


def _prepare_messages_with_template_tools(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Normalise messages for a template that handles tools natively."""
    out = []
    for msg in messages:
        new = dict(msg)
        new["content"] = _content_text(msg.get("content"))
        if msg.get("tool_calls"):
            calls = []
            for call in msg["tool_calls"]:
                name, args = _call_name_args(call)
                calls.append(
                    {
                        "id": call.get("id"),
                        "type": "function",
                        "function": {"name": name, "arguments": args},
                    }
                )
            new["tool_calls"] = calls
        out.append(new)
    return out


def _prepare_messages_textual(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, tool_choice: Any
) -> list[dict[str, Any]]:
    """Rewrite tool calls / results / tool declarations into plain system/user/assistant text."""
    out: list[dict[str, Any]] = []
    pending_results: list[str] = []

    def flush_results() -> None:
        if pending_results:
            out.append({"role": "user", "content": "\n".join(pending_results)})
            pending_results.clear()

    for msg in messages:
        role = msg.get("role")
        content = _content_text(msg.get("content"))
        if role == "tool":
            # Several results in a row become one user turn, as Hermes-style templates do.
            pending_results.append(f"<tool_response>\n{content}\n</tool_response>")
            continue
        flush_results()
        if role == "assistant" and msg.get("tool_calls"):
            parts = [content] if content else []
            parts += [format_tool_call(*_call_name_args(c)) for c in msg["tool_calls"]]
            out.append({"role": "assistant", "content": "\n".join(parts)})
        elif role in ("system", "developer"):
            out.append({"role": "system", "content": content})
        else:
            out.append({"role": role, "content": content})
    flush_results()

    if tools and tool_choice != "none":
        section = tools_system_prompt(tools, tool_choice)
        if out and out[0]["role"] == "system":
            first = out[0]["content"]
            out[0] = {"role": "system", "content": f"{first}\n\n{section}" if first else section}
        else:
            out.insert(0, {"role": "system", "content": section})
    return out


def render_chat(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    tool_choice: Any = None,
) -> str:
    """Render OpenAI-style `messages` (and `tools`) to a prompt ending in an assistant turn."""
    if not messages:
        raise BadRequestError("messages must not be empty", field="messages")
    if getattr(tokenizer, "chat_template", None) is None:
        raise BadRequestError("this model has no chat template; use the completion API")
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True}
    if template_supports_tools(tokenizer):
        prepared = _prepare_messages_with_template_tools(messages)
        if tools and tool_choice != "none":
            kwargs["tools"] = [_tool_signature(t) for t in tools]
    else:
        prepared = _prepare_messages_textual(messages, tools, tool_choice)
    try:
        rendered = tokenizer.apply_chat_template(prepared, **kwargs)
    except Exception as exc:  # template errors (e.g. role order) are the caller's to fix
        raise BadRequestError(f"cannot render chat messages: {exc}", field="messages") from exc
    return rendered if isinstance(rendered, str) else str(rendered)


def _as_call(obj: Any, names: set[str], raw: str) -> ParsedToolCall | None:
    """A tool call from a decoded JSON value, if it looks like one for a known tool."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict) and "name" not in obj:
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or name not in names:
        return None
    if "arguments" in obj:
        args = obj["arguments"]
    elif "parameters" in obj:
        args = obj["parameters"]
    else:
        return None
    args = _arguments_dict(args)
    if not isinstance(args, dict):
        return None
    return ParsedToolCall(name=name, arguments=args, raw=raw)


def _calls_from_value(value: Any, names: set[str], raw: str) -> list[ParsedToolCall] | None:
    """Calls from one JSON value: an object, or a list of objects (all must be calls)."""
    if isinstance(value, list) and value:
        calls = [_as_call(v, names, json.dumps(v, ensure_ascii=False)) for v in value]
        if all(c is not None for c in calls):
            return calls  # type: ignore[return-value]
        return None
    call = _as_call(value, names, raw)
    return [call] if call is not None else None


def parse_tool_calls(text: str, tool_names: set[str]) -> tuple[str, list[ParsedToolCall]]:
    """Extract tool calls from generated text; returns `(remaining_content, calls)`.

    Recognised: `<tool_call>{json}</tool_call>` blocks (the closing tag may be missing at the
    end of the text), and bare JSON objects (or lists of objects) with a `name` and
    `arguments` / `parameters`. Only calls to names in `tool_names` count; anything that is
    not a call stays in the content.
    """
    if not text or not tool_names:
        return text, []
    decoder = json.JSONDecoder()
    calls: list[ParsedToolCall] = []
    spans: list[tuple[int, int]] = []

    for match in _TOOL_BLOCK_RE.finditer(text):
        body = match.group(1).strip()
        try:
            value, end = decoder.raw_decode(body)
        except json.JSONDecodeError:
            continue
        if body[end:].strip():
            continue
        found = _calls_from_value(value, tool_names, body)
        if found:
            calls += found
            spans.append(match.span())

    if not calls:
        pos = 0
        while True:
            starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i != -1]
            if not starts:
                break
            start = min(starts)
            try:
                value, end = decoder.raw_decode(text, start)
            except json.JSONDecodeError:
                pos = start + 1
                continue
            found = _calls_from_value(value, tool_names, text[start:end])
            if found:
                calls += found
                spans.append((start, end))
                pos = end
            else:
                pos = start + 1

    if not calls:
        return text, []
    remaining, last = [], 0
    for start, end in spans:
        remaining.append(text[last:start])
        last = end
    remaining.append(text[last:])
    content = "".join(remaining)
    # Code fences left empty by removing the JSON inside them are noise.
    content = re.sub(r"```(?:json)?\s*```", "", content)
    return content.strip(), calls


def tool_call_json_schema(tools: list[dict[str, Any]], tool_choice: Any = "required") -> dict:
    """A JSON schema whose instances are exactly one valid call of one of `tools`.

    `{"name": <tool name>, "arguments": <that tool's parameters>}`; with `tool_choice`
    naming a tool (string or OpenAI `{"type": "function", "function": {"name": ...}}`), only
    that tool. Used to force a tool call through constrained decoding.
    """
    if not tools:
        raise BadRequestError("tool_choice requires tools, but none were given", field="tools")
    named = _named_choice(tool_choice)
    variants = []
    for tool in tools:
        fn = tool.get("function", tool)
        name = fn.get("name")
        if not name or (named is not None and name != named):
            continue
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        variants.append(
            {
                "type": "object",
                "properties": {"name": {"type": "string", "enum": [name]}, "arguments": params},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    if not variants:
        raise BadRequestError(
            f"tool_choice names '{named}', which is not among the tools", field="tool_choice"
        )
    return variants[0] if len(variants) == 1 else {"anyOf": variants}
