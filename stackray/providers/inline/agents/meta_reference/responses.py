"""The OpenAI Responses API on the stack's inference and vector IO APIs.

A response is one or more chat completions: `function` tools are returned to the client
as `function_call` items (it answers with `function_call_output` items in a follow-up
response); `file_search` runs here, over vector dbs of the vector IO API (the tool's
`vector_store_ids` name vector dbs), and the model is asked again with the results.
Stored responses keep their whole input (the chain of `previous_response_id` followed by
the new input), so a follow-up replays the conversation: previous input, previous output,
new input. `web_search` and `mcp` tools are refused with a 400 naming the tool.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import TypeAdapter

from stackray.api.common import interleaved_content_as_str
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, NotFoundError
from stackray.api.inference import OpenAIChatCompletionRequest
from stackray.api.responses import (
    CreateOpenaiResponseRequest,
    ListOpenAIResponseInputItem,
    ListOpenAIResponseObject,
    OpenAIResponseIncompleteDetails,
    OpenAIResponseInput,
    OpenAIResponseInputFunctionToolCallOutput,
    OpenAIResponseInputToolFileSearch,
    OpenAIResponseInputToolFunction,
    OpenAIResponseMessage,
    OpenAIResponseObject,
    OpenAIResponseObjectStream,
    OpenAIResponseObjectStreamResponseCompleted,
    OpenAIResponseObjectStreamResponseCreated,
    OpenAIResponseObjectStreamResponseFunctionCallArgumentsDelta,
    OpenAIResponseObjectStreamResponseFunctionCallArgumentsDone,
    OpenAIResponseObjectStreamResponseOutputItemAdded,
    OpenAIResponseObjectStreamResponseOutputItemDone,
    OpenAIResponseObjectStreamResponseOutputTextDelta,
    OpenAIResponseObjectStreamResponseOutputTextDone,
    OpenAIResponseObjectWithInput,
    OpenAIResponseOutputMessageContentOutputText,
    OpenAIResponseOutputMessageFileSearchToolCall,
    OpenAIResponseOutputMessageFunctionToolCall,
    OpenAIResponseText,
    OpenAIResponseTextFormat,
    OpenAIResponseUsage,
)
from stackray.api.vector_io import QueryChunksRequest
from stackray.providers.inline.agents.meta_reference.apis import AgentApis
from stackray.runtime.errors import to_stack_error
from stackray.runtime.owned import OwnedDocuments, readable_page, stamp
from stackray.runtime.storage import DocumentStore

FILE_SEARCH = "file_search"
_INPUT_ITEMS = TypeAdapter(list[OpenAIResponseInput])


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class _Usage:
    """Token counts summed over a response's model calls; unknown (None) when a model
    call reported none."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.reported = 0

    def add(self, usage: Any) -> None:
        if usage is None:
            return
        self.reported += 1
        self.input_tokens += usage.prompt_tokens or 0
        self.output_tokens += usage.completion_tokens or 0

    def value(self) -> OpenAIResponseUsage | None:
        if not self.reported:
            return None
        return OpenAIResponseUsage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            total_tokens=self.input_tokens + self.output_tokens,
        )


class _Prepared:
    def __init__(
        self,
        request: CreateOpenaiResponseRequest,
        input_items: list[Any],
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        file_search: OpenAIResponseInputToolFileSearch | None,
    ) -> None:
        self.request = request
        self.input_items = input_items
        self.messages = messages
        self.tools = tools
        self.file_search = file_search


def _text_of_content(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(getattr(part, "text", "") or "" for part in content)


def _chat_content(content: Any) -> Any:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if part.type in ("input_text", "output_text"):
            parts.append({"type": "text", "text": part.text})
        elif part.type == "input_image" and part.image_url:
            parts.append({"type": "image_url", "image_url": {"url": part.image_url}})
    return parts


def input_to_chat(items: list[Any]) -> list[dict[str, Any]]:
    """Responses input items as chat completion messages."""
    messages: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, OpenAIResponseMessage):
            role = "system" if item.role == "developer" else item.role
            content = (
                _text_of_content(item.content)
                if role == "assistant"
                else _chat_content(item.content)
            )
            messages.append({"role": role, "content": content})
        elif isinstance(item, OpenAIResponseOutputMessageFunctionToolCall):
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif isinstance(item, OpenAIResponseInputFunctionToolCallOutput):
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.output})
        # file_search and web_search calls ran on the server; their results went into the
        # assistant message that follows them.
    return messages


class OpenAIResponses:
    """The Responses API part of the agents router (mixed into `MetaReferenceAgents`)."""

    deps: dict[Api, Any]
    apis: AgentApis
    responses: DocumentStore
    response_access: OwnedDocuments

    # ---- create -----------------------------------------------------------------------

    async def create_openai_response(
        self, request: CreateOpenaiResponseRequest
    ) -> OpenAIResponseObject:
        final: OpenAIResponseObject | None = None
        async for event in self.create_openai_response_stream(request):
            if isinstance(event, OpenAIResponseObjectStreamResponseCompleted):
                final = event.response
        assert final is not None
        return final

    async def create_openai_response_stream(
        self, request: CreateOpenaiResponseRequest
    ) -> AsyncIterator[OpenAIResponseObjectStream]:
        prepared = await self._prepare_response(request)
        response = OpenAIResponseObject(
            created_at=int(time.time()),
            id=_id("resp"),
            model=request.model,
            output=[],
            previous_response_id=request.previous_response_id,
            status="in_progress",
            temperature=request.temperature,
            top_p=request.top_p,
            max_output_tokens=request.max_output_tokens,
            text=request.text or OpenAIResponseText(format=OpenAIResponseTextFormat(type="text")),
        )
        seq = 0

        def next_seq() -> int:
            nonlocal seq
            seq += 1
            return seq

        yield OpenAIResponseObjectStreamResponseCreated(response=response.model_copy(deep=True))
        output: list[Any] = []
        usage = _Usage()
        incomplete = False
        for _ in range(max(1, request.max_infer_iters or 10)):
            left = None
            if request.max_output_tokens is not None:
                left = request.max_output_tokens - usage.output_tokens
                if left < 1:  # the budget went on the steps before (file searches)
                    incomplete = True
                    break
            text_item: OpenAIResponseMessage | None = None
            text: list[str] = []
            calls: dict[int, dict[str, Any]] = {}
            finish: str | None = None
            try:
                async for chunk in self.apis.inference.openai_chat_completion_stream(
                    self._chat_request(prepared, left)
                ):
                    usage.add(chunk.usage)
                    for choice in chunk.choices:
                        finish = choice.finish_reason or finish
                        delta = choice.delta
                        if delta.content:
                            piece = delta.content if isinstance(delta.content, str) else ""
                            if text_item is None:
                                text_item = OpenAIResponseMessage(
                                    id=_id("msg"),
                                    role="assistant",
                                    content=[],
                                    status="in_progress",
                                )
                                yield OpenAIResponseObjectStreamResponseOutputItemAdded(
                                    response_id=response.id,
                                    item=text_item,
                                    output_index=len(output),
                                    sequence_number=next_seq(),
                                )
                            text.append(piece)
                            yield OpenAIResponseObjectStreamResponseOutputTextDelta(
                                content_index=0,
                                delta=piece,
                                item_id=text_item.id or "",
                                output_index=len(output),
                                sequence_number=next_seq(),
                            )
                        for j, delta_call in enumerate(delta.tool_calls or []):
                            slot = calls.setdefault(
                                delta_call.index if delta_call.index is not None else j,
                                {"id": None, "name": "", "arguments": ""},
                            )
                            slot["id"] = delta_call.id or slot["id"]
                            if delta_call.function is not None:
                                slot["name"] += delta_call.function.name or ""
                                slot["arguments"] += delta_call.function.arguments or ""
            except Exception as exc:
                raise to_stack_error(exc, api="inference") from None

            if text_item is not None:
                full = "".join(text)
                yield OpenAIResponseObjectStreamResponseOutputTextDone(
                    content_index=0,
                    text=full,
                    item_id=text_item.id or "",
                    output_index=len(output),
                    sequence_number=next_seq(),
                )
                done = text_item.model_copy(
                    update={
                        "content": [OpenAIResponseOutputMessageContentOutputText(text=full)],
                        "status": "completed",
                    }
                )
                yield OpenAIResponseObjectStreamResponseOutputItemDone(
                    response_id=response.id,
                    item=done,
                    output_index=len(output),
                    sequence_number=next_seq(),
                )
                output.append(done)

            searched = False
            assistant_calls = []
            for index in sorted(calls):
                call = calls[index]
                call_id = call["id"] or _id("call")
                if call["name"] == FILE_SEARCH and prepared.file_search is not None:
                    item = await self._file_search(prepared.file_search, call["arguments"])
                    yield OpenAIResponseObjectStreamResponseOutputItemAdded(
                        response_id=response.id,
                        item=item,
                        output_index=len(output),
                        sequence_number=next_seq(),
                    )
                    yield OpenAIResponseObjectStreamResponseOutputItemDone(
                        response_id=response.id,
                        item=item,
                        output_index=len(output),
                        sequence_number=next_seq(),
                    )
                    output.append(item)
                    assistant_calls.append((call_id, call, _search_text(item)))
                    searched = True
                    continue
                fc = OpenAIResponseOutputMessageFunctionToolCall(
                    id=_id("fc"),
                    call_id=call_id,
                    name=call["name"],
                    arguments=call["arguments"],
                    status="in_progress",
                )
                yield OpenAIResponseObjectStreamResponseOutputItemAdded(
                    response_id=response.id,
                    item=fc,
                    output_index=len(output),
                    sequence_number=next_seq(),
                )
                yield OpenAIResponseObjectStreamResponseFunctionCallArgumentsDelta(
                    delta=fc.arguments,
                    item_id=fc.id or "",
                    output_index=len(output),
                    sequence_number=next_seq(),
                )
                yield OpenAIResponseObjectStreamResponseFunctionCallArgumentsDone(
                    arguments=fc.arguments,
                    item_id=fc.id or "",
                    output_index=len(output),
                    sequence_number=next_seq(),
                )
                fc = fc.model_copy(update={"status": "completed"})
                yield OpenAIResponseObjectStreamResponseOutputItemDone(
                    response_id=response.id,
                    item=fc,
                    output_index=len(output),
                    sequence_number=next_seq(),
                )
                output.append(fc)
            if finish == "length":
                incomplete = True  # cut at max_output_tokens (or the model's own limit)
                break
            if not searched or len(assistant_calls) != len(calls):
                break  # an answer, or function calls for the client
            prepared.messages.append(
                {
                    "role": "assistant",
                    "content": "".join(text) or None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"]},
                        }
                        for call_id, c, _ in assistant_calls
                    ],
                }
            )
            prepared.messages.extend(
                {"role": "tool", "tool_call_id": call_id, "content": result}
                for call_id, _, result in assistant_calls
            )

        update: dict[str, Any] = {"output": output, "status": "completed", "usage": usage.value()}
        if incomplete:
            update.update(
                status="incomplete",
                incomplete_details=OpenAIResponseIncompleteDetails(reason="max_output_tokens"),
            )
        response = response.model_copy(update=update)
        if request.store is not False:
            stored = OpenAIResponseObjectWithInput.model_validate(
                {**response.model_dump(mode="json"), "input": prepared.input_items}
            )
            self.responses.put(
                response.id,
                stamp(
                    {
                        "created": response.created_at,
                        "model": response.model,
                        "response": stored.model_dump(mode="json"),
                    }
                ),
            )
        yield OpenAIResponseObjectStreamResponseCompleted(response=response)

    def _chat_request(
        self, prepared: _Prepared, max_tokens: int | None = None
    ) -> OpenAIChatCompletionRequest:
        request = prepared.request
        body: dict[str, Any] = {
            "model": request.model,
            "messages": prepared.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if prepared.tools:
            body["tools"] = prepared.tools
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        fmt = request.text.format if request.text is not None else None
        if fmt is not None and fmt.type == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": fmt.name or "response", "schema": fmt.schema_ or {}},
            }
        elif fmt is not None and fmt.type == "json_object":
            body["response_format"] = {"type": "json_object"}
        return OpenAIChatCompletionRequest.model_validate(body)

    async def _prepare_response(self, request: CreateOpenaiResponseRequest) -> _Prepared:
        try:
            await self.apis.inference.get_model(request.model)
        except Exception as exc:
            raise to_stack_error(exc, api="inference") from None
        items: list[Any] = []
        if request.previous_response_id is not None:
            previous = self._stored_response(request.previous_response_id, "previous_response_id")
            items = [*previous.input, *previous.output]
        new = (
            [OpenAIResponseMessage(role="user", content=request.input)]
            if isinstance(request.input, str)
            else list(request.input)
        )
        for item in new:  # give every stored input item an id (for input_items paging)
            if getattr(item, "id", None) is None:
                item.id = _id("msg" if isinstance(item, OpenAIResponseMessage) else "item")
        items += new
        tools: list[dict[str, Any]] = []
        file_search: OpenAIResponseInputToolFileSearch | None = None
        for i, tool in enumerate(request.tools or []):
            if isinstance(tool, OpenAIResponseInputToolFunction):
                function: dict[str, Any] = {"name": tool.name}
                if tool.description:
                    function["description"] = tool.description
                function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
                tools.append({"type": "function", "function": function})
            elif isinstance(tool, OpenAIResponseInputToolFileSearch):
                if self.apis.vector_io is None:
                    raise BadRequestError(
                        "file_search needs the vector_io API, which this stack does not serve",
                        field=f"tools[{i}]",
                    )
                file_search = tool
                tools.append(
                    {
                        "type": "function",
                        "function": {
                            "name": FILE_SEARCH,
                            "description": "Search the user's files for text relevant to a query.",
                            "parameters": {
                                "type": "object",
                                "properties": {
                                    "query": {"type": "string", "description": "What to look for"}
                                },
                                "required": ["query"],
                            },
                        },
                    }
                )
            else:
                raise BadRequestError(
                    f"{tool.type} tools are not supported by this stack's Responses API "
                    "(function and file_search are)",
                    field=f"tools[{i}].type",
                )
        messages: list[dict[str, Any]] = []
        if request.instructions:
            messages.append({"role": "system", "content": request.instructions})
        messages += input_to_chat(items)
        stored_items = _INPUT_ITEMS.dump_python(items, mode="json", exclude_none=True)
        return _Prepared(request, stored_items, messages, tools, file_search)

    async def _file_search(
        self, tool: OpenAIResponseInputToolFileSearch, arguments: str
    ) -> OpenAIResponseOutputMessageFileSearchToolCall:
        try:
            query = str(json.loads(arguments or "{}").get("query", ""))
        except (ValueError, AttributeError):
            query = arguments
        vector_io = self.apis.vector_io
        if vector_io is None:  # refused when the request was prepared
            raise BadRequestError("file_search needs the vector_io API", field="tools")
        k = tool.max_num_results or 10
        threshold = (tool.ranking_options.score_threshold if tool.ranking_options else 0.0) or 0.0
        results: list[dict[str, Any]] = []
        for store_id in tool.vector_store_ids:
            try:
                found = await vector_io.query_chunks(
                    QueryChunksRequest(
                        vector_db_id=store_id,
                        query=query,
                        params={"max_chunks": k, "score_threshold": threshold},
                    )
                )
            except Exception as exc:
                raise to_stack_error(exc, api="vector_io") from None
            for chunk, score in zip(found.chunks, found.scores, strict=False):
                results.append(
                    {
                        "file_id": str(chunk.metadata.get("document_id", "")),
                        "filename": str(chunk.metadata.get("filename", "")),
                        "text": interleaved_content_as_str(chunk.content),
                        "score": score,
                        "attributes": {},
                    }
                )
        results.sort(key=lambda r: -float(r["score"]))
        return OpenAIResponseOutputMessageFileSearchToolCall(
            id=_id("fs"), queries=[query], status="completed", results=results[:k]
        )

    # ---- stored responses ---------------------------------------------------------------

    def _stored_response(self, response_id: str, field: str) -> OpenAIResponseObjectWithInput:
        doc = self.responses.get(response_id) if isinstance(response_id, str) else None
        doc = self.response_access.visible(doc, response_id, "response", field)
        return OpenAIResponseObjectWithInput.model_validate(doc["response"])

    def get_openai_response(self, response_id: str) -> OpenAIResponseObject:
        stored = self._stored_response(response_id, "response_id")
        return OpenAIResponseObject.model_validate(stored.model_dump(exclude={"input"}))

    def list_openai_responses(
        self,
        after: str | None = None,
        limit: int | None = 50,
        model: str | None = None,
        order: str = "desc",
    ) -> ListOpenAIResponseObject:
        if order not in ("asc", "desc"):
            raise BadRequestError(f"order must be 'asc' or 'desc', got {order!r}", field="order")
        if limit is not None and limit < 1:
            raise BadRequestError(f"limit must be at least 1, got {limit}", field="limit")
        access = self.response_access
        if after is not None and not access.readable(self.responses.get(after), after):
            raise NotFoundError(f"response {after!r} (the 'after' cursor) not found", field="after")
        docs, has_more = readable_page(
            self.responses,
            lambda d: access.readable(d, d["response"]["id"]),
            {"model": model} if model else {},
            order_by="created",
            desc=order == "desc",
            after=after,
            limit=limit,
            id_of=lambda d: str(d["response"]["id"]),
        )
        data = [OpenAIResponseObjectWithInput.model_validate(d["response"]) for d in docs]
        return ListOpenAIResponseObject(
            data=data,
            has_more=has_more,
            first_id=data[0].id if data else "",
            last_id=data[-1].id if data else "",
        )

    def list_openai_response_input_items(
        self,
        response_id: str,
        after: str | None = None,
        before: str | None = None,
        include: list[str] | None = None,
        limit: int | None = 20,
        order: str = "desc",
    ) -> ListOpenAIResponseInputItem:
        if order not in ("asc", "desc"):
            raise BadRequestError(f"order must be 'asc' or 'desc', got {order!r}", field="order")
        if limit is not None and limit < 1:
            raise BadRequestError(f"limit must be at least 1, got {limit}", field="limit")
        items = list(self._stored_response(response_id, "response_id").input)
        if order == "desc":
            items.reverse()
        ids = [getattr(i, "id", None) for i in items]
        for cursor, name in ((after, "after"), (before, "before")):
            if cursor is not None and cursor not in ids:
                raise NotFoundError(f"input item {cursor!r} not found", field=name)
        if after is not None:
            items = items[ids.index(after) + 1 :]
            ids = ids[ids.index(after) + 1 :]
        if before is not None:
            items = items[: ids.index(before)]
        return ListOpenAIResponseInputItem(data=items[:limit] if limit else items)


def _search_text(item: OpenAIResponseOutputMessageFileSearchToolCall) -> str:
    if not item.results:
        return "No relevant files found."
    return "\n\n".join(f"[{i + 1}] {r['text']}" for i, r in enumerate(item.results))
