"""`inline::transformers`: local Hugging Face models (directories or GGUF files).

Requests from both API surfaces are turned into a `ChatPlan` (see `convert`), rendered
with the model's chat template, and decoded by a `TransformersEngine`, which batches
concurrent requests step by step.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackray.api.common import CompletionMessage, MetricInResponse, StopReason
from stackray.api.errors import BadRequestError
from stackray.api.inference import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseEvent,
    ChatCompletionResponseEventType,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    OpenAIChatCompletion,
    OpenAIChatCompletionChunk,
    OpenAIChatCompletionRequest,
    OpenAICompletion,
    OpenAICompletionRequest,
    TextDelta,
    ToolCallDelta,
    ToolCallParseStatus,
)
from stackray.api.models import Model, ModelType
from stackray.providers.inline.inference.transformers import convert
from stackray.providers.inline.inference.transformers.config import TransformersInferenceConfig
from stackray.providers.inline.inference.transformers.convert import ChatPlan


@dataclass
class Generated:
    """A finished generation."""

    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[dict[str, float]] | None = None
    finish_reason: str = "eos"
    prompt_tokens: int = 0
    completion_tokens: int = 0


class TransformersInferenceProvider:
    """Serves LLMs with transformers; embeddings belong to `inline::sentence-transformers`."""

    def __init__(
        self, config: TransformersInferenceConfig, deps: dict[Any, Any], context: Any
    ) -> None:
        self.config = config
        self.cache_dir = (
            Path(os.path.expanduser(config.cache_dir))
            if config.cache_dir
            else context.data_dir / "cache"
        )
        self._engines: OrderedDict[str, Any] = OrderedDict()
        self._load_lock = asyncio.Lock()
        if config.num_threads:
            # Otherwise torch follows OMP_NUM_THREADS, which Ray sets to the replica's num_cpus.
            import torch

            torch.set_num_threads(config.num_threads)

    # ---- models ------------------------------------------------------------------------

    async def _engine(self, name: str) -> Any:
        engine = self._engines.get(name)
        if engine is not None:
            self._engines.move_to_end(name)
            return engine
        async with self._load_lock:
            if name not in self._engines:
                self._engines[name] = await asyncio.to_thread(self._load, name)
                while len(self._engines) > self.config.max_loaded_models:
                    _, old = self._engines.popitem(last=False)
                    old.shutdown()
            return self._engines[name]

    def _load(self, name: str) -> Any:
        from stackray.providers.inline.inference.transformers import TransformersEngine

        return TransformersEngine(
            name,
            cache_dir=self.cache_dir,
            device=self.config.device,
            max_batch_size=self.config.max_batch_size,
            batch_wait_ms=self.config.batch_wait_ms,
            default_max_tokens=self.config.default_max_tokens,
        )

    async def preload(self, models: list[Any]) -> None:
        for m in models:
            if m.model_type == "llm":
                await self._engine(m.provider_model_id or m.model_id)

    async def register_model(self, model: Model) -> Model:
        if model.model_type != ModelType.llm:
            raise BadRequestError(
                f"inline::transformers serves llm models; embedding models belong to inline::sentence-transformers "
                f"(model {model.identifier!r})",
                field="model_type",
            )
        engine = await self._engine(model.provider_resource_id or model.identifier)
        metadata = dict(model.metadata or {})
        metadata.setdefault("context_length", engine.context_length)
        return model.model_copy(update={"metadata": metadata})

    async def unregister_model(self, provider_model_id: str) -> None:
        engine = self._engines.pop(provider_model_id, None)
        if engine is not None:
            engine.shutdown()

    async def check_health(self) -> None:
        return None

    # ---- generation --------------------------------------------------------------------

    def _request(
        self,
        engine: Any,
        plan: ChatPlan | None,
        prompt: Any,
        raw: bool = False,
        prompt_field: str = "messages",
    ) -> Any:
        from stackray.providers.inline.inference.transformers import (
            GenerationRequest,
            SamplingConfig,
            tool_call_json_schema,
        )

        assert plan is not None
        schema = plan.json_schema
        if plan.forces_tool_call and plan.tools:
            schema = tool_call_json_schema(plan.tools, plan.tool_choice)
        return GenerationRequest(
            prompt=prompt,
            sampling=SamplingConfig(**plan.sampling),
            max_tokens=plan.max_tokens,
            stop=plan.stop,
            logprobs_top_k=plan.logprobs_top_k,
            json_schema=schema,
            # One constraint per row: a forced tool call's schema takes the grammar's place.
            grammar=plan.grammar if schema is None else None,
            add_special_tokens=raw,
            prompt_field=prompt_field,
        )

    async def _chat_stream(self, model_id: str, plan: ChatPlan) -> tuple[Any, AsyncIterator[Any]]:
        engine = await self._engine(model_id)
        prompt = engine.render_chat(plan.messages, plan.tools, plan.tool_choice)
        return engine, engine.generate(self._request(engine, plan, prompt))

    @staticmethod
    async def _collect(chunks: AsyncIterator[Any], want_logprobs: bool) -> Generated:
        out = Generated(logprobs=[] if want_logprobs else None)
        parts = []
        async for c in chunks:
            parts.append(c.text)
            out.token_ids.extend(c.token_ids)
            if out.logprobs is not None and c.logprobs:
                out.logprobs.extend(c.logprobs)
            out.prompt_tokens, out.completion_tokens = c.prompt_tokens, c.completion_tokens
            if c.finish_reason is not None:
                out.finish_reason = c.finish_reason
        out.text = "".join(parts)
        return out

    def _tool_calls(self, plan: ChatPlan, text: str) -> tuple[str, list[Any]]:
        if not plan.tools:
            return text, []
        from stackray.providers.inline.inference.transformers import (
            ParsedToolCall,
            parse_tool_calls,
        )

        if plan.forces_tool_call:
            try:
                obj = json.loads(text)
                return "", [
                    ParsedToolCall(name=obj["name"], arguments=obj.get("arguments") or {}, raw=text)
                ]
            except (ValueError, KeyError, TypeError):
                pass
        return parse_tool_calls(text, plan.tool_names)

    @staticmethod
    def _metrics(g: Any) -> list[MetricInResponse]:
        return [
            MetricInResponse(metric="prompt_tokens", value=g.prompt_tokens),
            MetricInResponse(metric="completion_tokens", value=g.completion_tokens),
            MetricInResponse(metric="total_tokens", value=g.prompt_tokens + g.completion_tokens),
        ]

    # ---- Llama Stack chat --------------------------------------------------------------

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        plan = convert.plan_from_chat_request(request)
        _, chunks = await self._chat_stream(request.model_id, plan)
        g = await self._collect(chunks, plan.logprobs_top_k > 0)
        content, calls = self._tool_calls(plan, g.text)
        stop = StopReason.end_of_message if calls else convert.FINISH_TO_STOP[g.finish_reason]
        return ChatCompletionResponse(
            completion_message=CompletionMessage(
                content=content, stop_reason=stop, tool_calls=convert.to_llama_tool_calls(calls)
            ),
            logprobs=convert.llama_logprobs(g.logprobs),
            metrics=self._metrics(g),
        )

    async def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        plan = convert.plan_from_chat_request(request)
        _, chunks = await self._chat_stream(request.model_id, plan)

        def event(kind: str, delta: Any, **kw: Any) -> ChatCompletionResponseStreamChunk:
            return ChatCompletionResponseStreamChunk(
                event=ChatCompletionResponseEvent(
                    event_type=ChatCompletionResponseEventType(kind), delta=delta, **kw
                )
            )

        yield event("start", TextDelta(text=""))
        text, sent, held = "", 0, bool(plan.tools)
        last = None
        async for c in chunks:
            last = c
            text += c.text
            if held and _decided_plain(text):
                held = False
            if not held and (len(text) > sent or c.logprobs):
                yield event(
                    "progress",
                    TextDelta(text=text[sent:]),
                    logprobs=convert.llama_logprobs(c.logprobs),
                )
                sent = len(text)
        content, calls = self._tool_calls(plan, text)
        if calls:
            if held and content.strip():
                yield event("progress", TextDelta(text=content))
            for call in convert.to_llama_tool_calls(calls):
                yield event(
                    "progress",
                    ToolCallDelta(tool_call=call, parse_status=ToolCallParseStatus.succeeded),
                )
        elif len(text) > sent:
            yield event("progress", TextDelta(text=text[sent:]))
        finish = last.finish_reason if last is not None and last.finish_reason else "eos"
        stop = StopReason.end_of_message if calls else convert.FINISH_TO_STOP[finish]
        chunk = event("complete", TextDelta(text=""), stop_reason=stop)
        if last is not None:
            chunk.metrics = self._metrics(last)
        yield chunk

    # ---- Llama Stack completion --------------------------------------------------------

    def _completion_plan(self, request: CompletionRequest) -> ChatPlan:
        sampling, max_tokens, stop = convert.sampling_from_params(request.sampling_params)
        return ChatPlan(
            messages=[],
            tools=None,
            tool_choice=None,
            sampling=sampling,
            max_tokens=max_tokens,
            stop=stop,
            logprobs_top_k=convert._logprobs_k(request.logprobs),
            json_schema=convert.response_format_schema(request.response_format),
            grammar=convert.response_format_grammar(request.response_format),
        )

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        plan = self._completion_plan(request)
        engine = await self._engine(request.model_id)
        prompt = convert.content_text(request.content)
        g = await self._collect(
            engine.generate(self._request(engine, plan, prompt, raw=True, prompt_field="content")),
            plan.logprobs_top_k > 0,
        )
        return CompletionResponse(
            content=g.text,
            stop_reason=convert.FINISH_TO_STOP[g.finish_reason],
            logprobs=convert.llama_logprobs(g.logprobs),
            metrics=self._metrics(g),
        )

    async def completion_stream(
        self, request: CompletionRequest
    ) -> AsyncIterator[CompletionResponseStreamChunk]:
        plan = self._completion_plan(request)
        engine = await self._engine(request.model_id)
        prompt = convert.content_text(request.content)
        async for c in engine.generate(
            self._request(engine, plan, prompt, raw=True, prompt_field="content")
        ):
            chunk = CompletionResponseStreamChunk(
                delta=c.text, logprobs=convert.llama_logprobs(c.logprobs)
            )
            if c.finish_reason is not None:
                chunk.stop_reason = convert.FINISH_TO_STOP[c.finish_reason]
                chunk.metrics = self._metrics(c)
            yield chunk

    # ---- OpenAI chat -------------------------------------------------------------------

    async def openai_chat_completion(
        self, request: OpenAIChatCompletionRequest
    ) -> OpenAIChatCompletion:
        plan = convert.plan_from_openai_chat(request)
        engine, chunks = await self._chat_stream(request.model, plan)
        g = await self._collect(chunks, plan.logprobs_top_k > 0)
        content, calls = self._tool_calls(plan, g.text)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content if content or not calls else None,
        }
        if calls:
            message["tool_calls"] = convert.to_openai_tool_calls(calls)
        tokens = (
            [engine.tokenizer.decode([t]) for t in g.token_ids] if g.logprobs is not None else []
        )
        return OpenAIChatCompletion.model_validate(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls"
                        if calls
                        else convert.FINISH_TO_OPENAI[g.finish_reason],
                        "logprobs": convert.openai_logprobs(tokens, g.logprobs),
                    }
                ],
                "usage": _usage(g),
            }
        )

    async def openai_chat_completion_stream(
        self, request: OpenAIChatCompletionRequest
    ) -> AsyncIterator[OpenAIChatCompletionChunk]:
        plan = convert.plan_from_openai_chat(request)
        engine, chunks = await self._chat_stream(request.model, plan)
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        include_usage = bool((request.stream_options or {}).get("include_usage"))

        def chunk(
            delta: dict[str, Any],
            finish: str | None = None,
            logprobs: Any = None,
            usage: Any = None,
            choices: bool = True,
        ) -> OpenAIChatCompletionChunk:
            data: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": request.model,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}
                ]
                if choices
                else [],
            }
            if usage is not None:
                data["usage"] = usage
            return OpenAIChatCompletionChunk.model_validate(data)

        yield chunk({"role": "assistant", "content": ""})
        text, sent, held, last = "", 0, bool(plan.tools), None
        async for c in chunks:
            last = c
            text += c.text
            if held and _decided_plain(text):
                held = False
            if not held and (len(text) > sent or c.logprobs):
                lp = None
                if c.logprobs:
                    lp = convert.openai_logprobs(
                        [engine.tokenizer.decode([t]) for t in c.token_ids], c.logprobs
                    )
                yield chunk({"content": text[sent:]}, logprobs=lp)
                sent = len(text)
        content, calls = self._tool_calls(plan, text)
        if calls:
            if held and content.strip():
                yield chunk({"content": content})
            yield chunk({"tool_calls": convert.to_openai_tool_calls(calls, with_index=True)})
        elif len(text) > sent:
            yield chunk({"content": text[sent:]})
        finish = (
            "tool_calls"
            if calls
            else convert.FINISH_TO_OPENAI[(last.finish_reason if last else None) or "eos"]
        )
        yield chunk({}, finish=finish)
        if include_usage and last is not None:
            yield chunk({}, usage=_usage(last), choices=False)

    # ---- OpenAI completions ------------------------------------------------------------

    def _openai_completion_plan(
        self, request: OpenAICompletionRequest
    ) -> tuple[ChatPlan, list[Any]]:
        convert._check_n(request.n)
        if request.best_of not in (None, 1):
            raise BadRequestError("only best_of=1 is supported", field="best_of")
        if request.suffix:
            raise BadRequestError("suffix is not supported by inline::transformers", field="suffix")
        if request.guided_choice:
            raise BadRequestError(
                "guided_choice is not supported by inline::transformers", field="guided_choice"
            )
        prompt = request.prompt
        if isinstance(prompt, str):
            prompts: list[Any] = [prompt]
        elif prompt and isinstance(prompt[0], int):
            prompts = [list(prompt)]
        else:
            prompts = list(prompt)
        if not prompts:
            raise BadRequestError("prompt is empty", field="prompt")
        logprobs = request.logprobs
        k = 0 if logprobs in (None, False) else (1 if logprobs is True else int(logprobs))
        if not 0 <= k <= 20:
            raise BadRequestError("logprobs must be between 0 and 20", field="logprobs")
        if request.max_tokens is not None and request.max_tokens < 1:
            raise BadRequestError("max_tokens must be at least 1", field="max_tokens")
        plan = ChatPlan(
            messages=[],
            tools=None,
            tool_choice=None,
            sampling=convert.openai_sampling(request),
            # OpenAI's legacy completions default to 16 tokens.
            max_tokens=request.max_tokens or 16,
            stop=convert.openai_stop(request.stop),
            logprobs_top_k=k,
        )
        return plan, prompts

    async def openai_completion(self, request: OpenAICompletionRequest) -> OpenAICompletion:
        plan, prompts = self._openai_completion_plan(request)
        engine = await self._engine(request.model)
        results = await asyncio.gather(
            *(
                self._collect(
                    engine.generate(
                        self._request(engine, plan, p, raw=True, prompt_field="prompt")
                    ),
                    plan.logprobs_top_k > 0,
                )
                for p in prompts
            )
        )
        choices = []
        for i, (p, g) in enumerate(zip(prompts, results, strict=True)):
            text = g.text
            if request.echo:
                text = (p if isinstance(p, str) else engine.tokenizer.decode(p)) + text
            tokens = (
                [engine.tokenizer.decode([t]) for t in g.token_ids]
                if g.logprobs is not None
                else []
            )
            choices.append(
                {
                    "index": i,
                    "text": text,
                    "finish_reason": convert.FINISH_TO_OPENAI[g.finish_reason],
                    "logprobs": convert.openai_logprobs(tokens, g.logprobs),
                }
            )
        prompt_tokens = sum(g.prompt_tokens for g in results)
        completion_tokens = sum(g.completion_tokens for g in results)
        return OpenAICompletion.model_validate(
            {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": request.model,
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    async def openai_completion_stream(
        self, request: OpenAICompletionRequest
    ) -> AsyncIterator[OpenAICompletion]:
        plan, prompts = self._openai_completion_plan(request)
        if len(prompts) > 1:
            raise BadRequestError("streaming takes a single prompt", field="prompt")
        engine = await self._engine(request.model)
        cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        if request.echo:
            p = prompts[0]
            echoed = p if isinstance(p, str) else engine.tokenizer.decode(p)
            yield OpenAICompletion.model_validate(
                {
                    "id": cid,
                    "created": created,
                    "model": request.model,
                    "choices": [{"index": 0, "text": echoed, "finish_reason": None}],
                }
            )
        async for c in engine.generate(
            self._request(engine, plan, prompts[0], raw=True, prompt_field="prompt")
        ):
            lp = None
            if c.logprobs:
                lp = convert.openai_logprobs(
                    [engine.tokenizer.decode([t]) for t in c.token_ids], c.logprobs
                )
            finish = convert.FINISH_TO_OPENAI[c.finish_reason] if c.finish_reason else None
            yield OpenAICompletion.model_validate(
                {
                    "id": cid,
                    "created": created,
                    "model": request.model,
                    "choices": [
                        {"index": 0, "text": c.text, "finish_reason": finish, "logprobs": lp}
                    ],
                }
            )

    # ---- not served here ---------------------------------------------------------------

    async def embeddings(self, request: Any) -> Any:
        raise BadRequestError("inline::transformers serves no embedding models", field="model_id")

    async def openai_embeddings(self, request: Any) -> Any:
        raise BadRequestError("inline::transformers serves no embedding models", field="model")


def _decided_plain(text: str) -> bool:
    """True once the output clearly is not starting with a tool call."""
    stripped = text.lstrip()
    if not stripped:
        return False
    if stripped[0] in "{[":
        return False
    if "<tool_call>".startswith(stripped[: len("<tool_call>")]) or stripped.startswith(
        "<tool_call>"
    ):
        return False
    return True


def _usage(g: Any) -> dict[str, int]:
    return {
        "prompt_tokens": g.prompt_tokens,
        "completion_tokens": g.completion_tokens,
        "total_tokens": g.prompt_tokens + g.completion_tokens,
    }
