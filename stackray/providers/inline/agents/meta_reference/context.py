"""What the model sees in a turn: the session's history, truncated to its context window,
and the documents attached to turns, split into chunks.

Truncation policy (docs/agents.md): the system message (the agent's instructions) and the
current turn are always kept; earlier turns are dropped whole, oldest first, until the
estimated prompt fits in the model's context window minus the tokens reserved for the
answer and the tool definitions. Tokens are estimated as one per four characters of text
(a deliberately cautious figure for English; no tokenizer is loaded in the agents
deployment).
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from typing import Any

from stackray.api.agents import (
    Document,
    InferenceStep,
    ShieldCallStep,
    ToolExecutionStep,
    Turn,
)
from stackray.api.common import (
    URL,
    CompletionMessage,
    ImageContentItem,
    InterleavedContent,
    Message,
    StopReason,
    TextContentItem,
    ToolDefinition,
    ToolResponseMessage,
    interleaved_content_as_str,
)
from stackray.api.errors import BadRequestError

CHARS_PER_TOKEN = 4
"""Characters per token in the estimate used for truncation."""

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens a chat template adds around each message (role markers, separators)."""


def estimate_tokens(messages: list[Message]) -> int:
    """A cautious estimate of the prompt tokens of `messages`."""
    chars = 0
    for m in messages:
        chars += len(interleaved_content_as_str(m.content))
        if isinstance(m, CompletionMessage):
            for call in m.tool_calls or []:
                chars += len(str(call.tool_name)) + len(json.dumps(call.arguments))
        context = getattr(m, "context", None)
        if context is not None:
            chars += len(interleaved_content_as_str(context))
    return chars // CHARS_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS * len(messages)


def estimate_tool_tokens(tools: list[ToolDefinition]) -> int:
    return sum(len(t.model_dump_json()) for t in tools) // CHARS_PER_TOKEN


def turn_messages(turn: Turn) -> list[Message]:
    """A finished turn as the conversation the model should remember: the input, every
    tool call that got its responses with those responses, then the turn's answer."""
    messages: list[Message] = list(turn.input_messages)
    answered: set[str] = set()
    for step in turn.steps:
        if isinstance(step, ToolExecutionStep):
            answered.update(r.call_id for r in step.tool_responses)
    for step in turn.steps:
        if isinstance(step, InferenceStep) and step.model_response.tool_calls:
            calls = step.model_response.tool_calls
            if all(c.call_id in answered for c in calls):
                messages.append(step.model_response)
        elif isinstance(step, ToolExecutionStep):
            messages.extend(
                ToolResponseMessage(call_id=r.call_id, content=r.content)
                for r in step.tool_responses
            )
        elif isinstance(step, ShieldCallStep):
            continue
    output = turn.output_message
    if output.tool_calls:  # unanswered calls (max_infer_iters reached): keep the text only
        output = output.model_copy(update={"tool_calls": []})
    messages.append(
        CompletionMessage(
            content=output.content, stop_reason=StopReason.end_of_turn, tool_calls=output.tool_calls
        )
    )
    return messages


def fit_history(
    system: list[Message],
    history: list[list[Message]],
    current: list[Message],
    budget_tokens: int,
) -> tuple[list[Message], int]:
    """System + as many of the latest history turns as fit + the current turn; returns the
    messages and how many earlier turns were dropped."""
    fixed = estimate_tokens(system) + estimate_tokens(current)
    kept: list[list[Message]] = []
    used = fixed
    for turn in reversed(history):
        cost = estimate_tokens(turn)
        if used + cost > budget_tokens:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    flat = [m for turn in kept for m in turn]
    return [*system, *flat, *current], len(history) - len(kept)


# ---- documents ------------------------------------------------------------------------


def _data_url_text(uri: str) -> str:
    header, _, payload = uri.partition(",")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True).decode("utf-8")
        return urllib.parse.unquote(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(
            f"document data URL is not UTF-8 text: {exc}", field="documents"
        ) from None


async def document_text(document: Document, index: int) -> str:
    """The text of a document: inline text, a data: URL, or an http(s) URL fetched now."""
    content = document.content
    field = f"documents[{index}].content"
    if isinstance(content, URL):
        uri = content.uri
        if uri.startswith("data:"):
            return _data_url_text(uri)
        if uri.startswith(("http://", "https://")):
            import httpx

            try:
                async with httpx.AsyncClient(timeout=30, follow_redirects=True) as client:
                    response = await client.get(uri)
                    response.raise_for_status()
                    return response.text
            except httpx.HTTPError as exc:
                raise BadRequestError(f"cannot fetch document {uri}: {exc}", field=field) from None
        raise BadRequestError(
            f"document URL {uri!r}: only data:, http: and https: URLs are supported", field=field
        )
    items: list[Any] = content if isinstance(content, list) else [content]
    texts = []
    for item in items:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, TextContentItem):
            texts.append(item.text)
        elif isinstance(item, ImageContentItem):
            raise BadRequestError("image documents cannot be indexed for search", field=field)
    return "\n".join(texts)


def chunk_words(text: str, size: int, overlap: int) -> list[str]:
    """Windows of `size` words, consecutive ones sharing `overlap` words."""
    words = text.split()
    if not words:
        return []
    step = max(1, size - min(overlap, size - 1))
    chunks = []
    for start in range(0, len(words), step):
        chunks.append(" ".join(words[start : start + size]))
        if start + size >= len(words):
            break
    return chunks


def content_text(content: InterleavedContent | None) -> str:
    return "" if content is None else interleaved_content_as_str(content)
