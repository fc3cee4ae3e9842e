"""The generation engine behind the `inline::transformers` inference provider.

One background thread owns the model and runs a continuous-batching loop:

1. Requests are queued by `generate()` (any number of asyncio loops may call it).
2. When the engine is idle, the first request waits up to `batch_wait_ms` for company, so a
   burst of concurrent requests is prefilled as one left-padded batch.
3. Each iteration first admits waiting requests (up to `max_batch_size` rows in total): they
   are tokenised, prefilled together into their own KV cache, and merged into the running
   batch (see `kv_batch.py`). Then every row advances one token in a single forward pass.
4. Each row samples with its own parameters (vectorised, see `sampling.py`), applies its own
   stop strings and grammar, and streams chunks back to its caller's event loop with
   `loop.call_soon_threadsafe`.
5. Rows that finish, fail, or whose consumer went away are dropped from the batch and its
   cache at once, so they cost nothing afterwards.

A forward-pass failure fails the rows in that pass; a failure while handling one row's output
fails that row. The thread keeps serving either way.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from stackray.api.errors import BadRequestError, ProviderError, StackError

from .chat_format import render_chat
from .constraints import GrammarFactory, RowConstraint, apply_constraints
from .kv_batch import KVBatch, cache_is_reshapable, new_cache
from .loader import load_model, resolve_model_source
from .sampling import (
    SamplingConfig,
    SamplingTensors,
    apply_repetition_penalty,
    make_generator,
    sample,
    top_logprobs,
)
from .text_stream import TextStream

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

logger = logging.getLogger(__name__)

FinishReason = Literal["eos", "stop", "length"]

# OpenAI caps top_logprobs at 20; more is rarely useful and costs a decode per entry.
MAX_LOGPROBS = 20

# End-of-turn tokens of common chat formats, counted as end of generation when the tokenizer
# has them as added tokens (the configured eos of a chat model is not always the turn end).
_END_TOKENS = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<end_of_turn>",
    "<|eom_id|>",
)


@dataclass
class GenerationRequest:
    """One generation: a prompt (text or token ids) and how to continue it.

    `max_tokens=None` means `default_max_tokens`, always bounded by the context window.
    `stop` strings end generation and are not part of the output. `logprobs_top_k > 0` asks
    for the top-k log-probabilities of every generated token. `json_schema` constrains the
    output to JSON valid against it. `add_special_tokens` applies to text prompts (a rendered
    chat prompt already has its special tokens).
    """

    prompt: str | list[int]
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    logprobs_top_k: int = 0
    json_schema: dict | None = None
    grammar: str | None = None
    """An EBNF grammar (GBNF notation, `root` the start rule) the output must follow."""
    add_special_tokens: bool = False
    prompt_field: str = "prompt"
    """The request field the prompt came from (`messages` for a chat), named in errors."""


@dataclass
class GenerationChunk:
    """A piece of streamed output.

    `token_ids` are the tokens generated since the previous chunk (the end token itself is
    not included; tokens of a stop string are). `logprobs` has one dict per entry of
    `token_ids` when requested. `finish_reason` is set on the last chunk only.
    `completion_tokens` counts all tokens generated so far, end token included.
    """

    text: str
    token_ids: list[int]
    logprobs: list[dict[str, float]] | None
    finish_reason: FinishReason | None
    prompt_tokens: int
    completion_tokens: int


class _Handle:
    """A submitted request: where its results go and whether its consumer is still there."""

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.loop = loop
        self.queue: asyncio.Queue[GenerationChunk | BaseException] = asyncio.Queue()
        # Set from the consumer's thread, read by the worker; a plain bool is enough (GIL).
        self.cancelled = False
        self.done = False

    def deliver(self, item: GenerationChunk | BaseException) -> None:
        if self.done:
            return
        if isinstance(item, BaseException) or item.finish_reason is not None:
            self.done = True
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the caller's loop is closed: nobody is listening any more
            self.cancelled = True


@dataclass
class _Row:
    """The worker's state for one request in the running batch."""

    handle: _Handle
    prompt_ids: list[int]
    max_new: int
    sampling: SamplingConfig
    generator: torch.Generator | None
    constraint: RowConstraint | None
    text: TextStream
    logprobs_k: int
    num_tokens: int = 0  # real tokens in the KV cache (= this row's next position id)
    next_token: int = -1  # sampled, not yet fed to the model
    generated: int = 0
    pending_ids: list[int] = field(default_factory=list)
    pending_logprobs: list[dict[str, float]] = field(default_factory=list)


def _as_error(exc: BaseException) -> BaseException:
    """Errors for the caller: ours pass through, anything else becomes a ProviderError."""
    if isinstance(exc, StackError):
        return exc
    err = ProviderError(f"generation failed: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


class TransformersEngine:
    """Batched text generation with a Hugging Face transformers causal LM.

    Loads the model (see `loader.resolve_model_source` for what `model_source` may be) and
    starts one worker thread that owns it. `generate()` is safe to call concurrently from any
    asyncio loop; concurrent requests are decoded together in one batch, each with its own
    sampling parameters, stop strings, length limit and grammar. Call `shutdown()` to stop.
    """

    def __init__(
        self,
        model_source: str,
        *,
        cache_dir: Path,
        device: str = "auto",
        max_batch_size: int = 8,
        batch_wait_ms: float = 5.0,
        default_max_tokens: int = 512,
        max_context_length: int | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if default_max_tokens < 1:
            raise ValueError(f"default_max_tokens must be >= 1, got {default_max_tokens}")
        self._source = resolve_model_source(model_source)
        self._model, self._tokenizer = load_model(self._source, Path(cache_dir), device)
        self._device = next(self._model.parameters()).device
        self._max_batch = max_batch_size
        self._batch_wait_s = max(batch_wait_ms, 0.0) / 1000.0
        self._default_max_tokens = default_max_tokens
        self._context_length = self._find_context_length()
        if max_context_length is not None:
            # A smaller context than the model's (Llama Stack's max_seq_len).
            self._context_length = min(self._context_length, max_context_length)
        self._vocab_size = int(self._model.get_output_embeddings().weight.shape[0])
        self._end_ids = self._find_end_ids()
        pad = self._tokenizer.pad_token_id
        self._pad_id = int(pad) if pad is not None else min(self._end_ids, default=0)
        self._cache_kw, self._logits_kw = self._forward_kwarg_names()
        # Merging and trimming caches is only valid for plain full-attention layers.
        self._reshapable = cache_is_reshapable(new_cache(self._model.config))
        self._grammar: GrammarFactory | None = None
        self._grammar_lock = threading.Lock()
        self._token_strings: dict[int, str] = {}

        self._cond = threading.Condition()
        self._pending: deque[_Handle] = deque()
        self._stopping = False
        # Owned by the worker thread only.
        self._rows: list[_Row] = []
        self._batch: KVBatch | None = None
        self._thread = threading.Thread(
            target=self._worker, name="transformers-engine", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------ properties

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer."""
        return self._tokenizer

    @property
    def context_length(self) -> int:
        """Maximum prompt + output tokens per sequence."""
        return self._context_length

    @property
    def model_name(self) -> str:
        """The model's name (canonical name for aliases, else what was given)."""
        return self._source.name

    @property
    def device(self) -> str:
        """The device the model runs on, e.g. "cpu" or "cuda:0"."""
        return str(self._device)

    def stats(self) -> dict[str, int]:
        """Rows decoding now and requests waiting to join (a snapshot, for metrics)."""
        with self._cond:
            return {"running": len(self._rows), "waiting": len(self._pending)}

    # ------------------------------------------------------------------ public API

    def render_chat(
        self,
        messages: list[dict],
        tools: list[dict] | None = None,
        tool_choice: str | None = None,
    ) -> str:
        """Render OpenAI-style chat messages (and tools) into a prompt for `generate`."""
        return render_chat(self._tokenizer, messages, tools, tool_choice)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream the continuation of `request.prompt` as `GenerationChunk`s.

        Closing the iterator early (or cancelling the task consuming it) cancels the request;
        its row leaves the batch at the next decode step.
        """
        if self._stopping:
            raise ProviderError("the transformers engine is shut down")
        handle = _Handle(request, asyncio.get_running_loop())
        with self._cond:
            self._pending.append(handle)
            self._cond.notify()
        finished = False
        try:
            while True:
                item = await handle.queue.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                finished = item.finish_reason is not None
                yield item
                if finished:
                    return
        finally:
            if not finished:
                handle.cancelled = True

    def shutdown(self, timeout: float | None = 30.0) -> None:
        """Stop the worker thread; requests still queued or running fail."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ setup helpers

    def _find_context_length(self) -> int:
        config = self._model.config
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        limit = getattr(self._tokenizer, "model_max_length", None)
        return int(limit) if isinstance(limit, int) and 0 < limit < 10**7 else 2048

    def _find_end_ids(self) -> set[int]:
        ids: set[int] = set()
        for value in (
            getattr(self._model.generation_config, "eos_token_id", None),
            getattr(self._model.config, "eos_token_id", None),
            self._tokenizer.eos_token_id,
        ):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        added = self._tokenizer.get_added_vocab()
        ids.update(added[name] for name in _END_TOKENS if name in added)
        return {i for i in ids if 0 <= i < self._vocab_size}

    def _forward_kwarg_names(self) -> tuple[str, str | None]:
        """transformers 5 calls the cache `cache`; 4.x called it `past_key_values`."""
        params = inspect.signature(self._model.forward).parameters
        cache_kw = "cache" if "cache" in params else "past_key_values"
        logits_kw = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
        return cache_kw, logits_kw

    def _grammar_factory(self) -> GrammarFactory:
        with self._grammar_lock:
            if self._grammar is None:
                self._grammar = GrammarFactory(self._tokenizer, self._vocab_size, self._end_ids)
            return self._grammar

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(
            ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

    def _token_string(self, token_id: int) -> str:
        text = self._token_strings.get(token_id)
        if text is None:
            text = self._tokenizer.decode([token_id], clean_up_tokenization_spaces=False)
            self._token_strings[token_id] = text
        return text

    # ------------------------------------------------------------------ worker thread

    def _worker(self) -> None:
        import torch

        with torch.inference_mode():
            while True:
                admit: list[_Handle] = []
                with self._cond:
                    while not self._stopping and not self._pending and not self._rows:
                        self._cond.wait()
                    if self._stopping:
                        break
                    if not self._rows and self._batch_wait_s > 0:
                        # Idle engine: give a burst of requests a moment to arrive together.
                        deadline = time.monotonic() + self._batch_wait_s
                        while not self._stopping and len(self._pending) < self._max_batch:
                            remaining = deadline - time.monotonic()
                            if remaining <= 0:
                                break
                            self._cond.wait(remaining)
                    if not self._rows or self._reshapable:
                        while self._pending and len(self._rows) + len(admit) < self._max_batch:
                            handle = self._pending.popleft()
                            if not handle.cancelled:
                                admit.append(handle)
                try:
                    if admit:
                        self._admit(admit)
                    if self._rows:
                        self._step()
                except Exception as exc:  # a bug in the loop itself: fail what is running
                    logger.exception("transformers engine worker error")
                    self._fail_running(exc)
        self._fail_running(ProviderError("the transformers engine was shut down"))
        with self._cond:
            pending, self._pending = list(self._pending), deque()
        for handle in pending:
            handle.deliver(ProviderError("the transformers engine was shut down"))

    def _fail_running(self, exc: BaseException) -> None:
        err = _as_error(exc)
        for row in self._rows:
            row.handle.deliver(err)
        self._rows = []
        self._batch = None

    def _new_row(self, handle: _Handle) -> _Row:
        """Validate and tokenise one request (raises BadRequestError for bad input)."""
        req = handle.request
        req.sampling.validate()
        if req.max_tokens is not None and req.max_tokens < 1:
            raise BadRequestError(
                f"max_tokens must be >= 1, got {req.max_tokens}", field="max_tokens"
            )
        if not (0 <= req.logprobs_top_k <= MAX_LOGPROBS):
            raise BadRequestError(
                f"logprobs_top_k must be between 0 and {MAX_LOGPROBS}", field="logprobs"
            )
        if isinstance(req.prompt, str):
            ids = list(
                self._tokenizer(req.prompt, add_special_tokens=req.add_special_tokens)["input_ids"]
            )
        else:
            ids = [int(t) for t in req.prompt]
            if any(t < 0 or t >= self._vocab_size for t in ids):
                raise BadRequestError(
                    f"prompt token ids must be in [0, {self._vocab_size})", field=req.prompt_field
                )
        if not ids:
            raise BadRequestError("the prompt is empty", field=req.prompt_field)
        if len(ids) >= self._context_length:
            raise BadRequestError(
                f"{req.prompt_field} too long: {len(ids)} prompt tokens, but the context length of "
                f"{self.model_name} is {self._context_length} tokens (prompt + output)",
                field=req.prompt_field,
            )
        wanted = req.max_tokens if req.max_tokens is not None else self._default_max_tokens
        constraint = None
        if req.json_schema is not None:
            if not isinstance(req.json_schema, dict):
                raise BadRequestError("json_schema must be an object", field="json_schema")
            constraint = self._grammar_factory().new_row(req.json_schema)
        elif req.grammar is not None:
            constraint = self._grammar_factory().new_grammar_row(req.grammar)
        sampling = req.sampling
        return _Row(
            handle=handle,
            prompt_ids=ids,
            max_new=min(wanted, self._context_length - len(ids)),
            sampling=sampling,
            generator=None if sampling.is_greedy else make_generator(sampling.seed),
            constraint=constraint,
            text=TextStream(self._decode, req.stop, context_ids=ids),
            logprobs_k=req.logprobs_top_k,
        )

    def _forward(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: Any,
        last_only: bool,
    ) -> torch.Tensor:
        """One model call; returns the last position's logits, `[rows, vocab]`."""
        kwargs: dict[str, Any] = {
            "attention_mask": mask,
            "position_ids": positions,
            self._cache_kw: cache,
            "use_cache": True,
        }
        if last_only and self._logits_kw is not None:
            # Only the last position is sampled: skip the [rows, T, vocab] logits of a prefill.
            kwargs[self._logits_kw] = 1
        out = self._model(input_ids=input_ids, **kwargs)
        return out.logits[:, -1, :]

    def _admit(self, handles: list[_Handle]) -> None:
        """Tokenise, prefill and merge new requests, then sample their first tokens."""
        import torch

        rows: list[_Row] = []
        for handle in handles:
            try:
                rows.append(self._new_row(handle))
            except Exception as exc:
                handle.deliver(_as_error(exc))
        if not rows:
            return
        try:
            width = max(len(r.prompt_ids) for r in rows)
            ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            seen = torch.zeros((len(rows), self._vocab_size), dtype=torch.bool)
            for i, row in enumerate(rows):
                n = len(row.prompt_ids)
                ids[i, width - n :] = torch.tensor(row.prompt_ids)
                mask[i, width - n :] = 1
                seen[i, row.prompt_ids] = True
                row.num_tokens = n
            # Left padding: positions count real tokens only, so padding shifts nothing.
            positions = (mask.cumsum(dim=1) - 1).clamp_(min=0)
            ids, mask, positions = (t.to(self._device) for t in (ids, mask, positions))
            cache = new_cache(self._model.config)
            logits = self._forward(ids, mask, positions, cache, last_only=True)
            part = KVBatch(cache, mask, seen.to(self._device))
            offset = len(self._rows)
            if self._batch is None:
                self._batch = part
            else:
                self._batch.merge(part)
        except Exception as exc:
            logger.warning("prefill failed for %d request(s)", len(rows), exc_info=True)
            err = _as_error(exc)
            for row in rows:
                row.handle.deliver(err)
            return
        self._rows.extend(rows)
        finished = self._process(list(range(offset, offset + len(rows))), logits)
        self._drop(finished)

    def _step(self) -> None:
        """Advance every running row by one token."""
        import torch

        gone = [i for i, row in enumerate(self._rows) if row.handle.cancelled]
        if gone:
            self._drop(gone)
        if not self._rows or self._batch is None:
            return
        rows = self._rows
        try:
            input_ids = torch.tensor([[r.next_token] for r in rows], device=self._device)
            positions = torch.tensor([[r.num_tokens] for r in rows], device=self._device)
            mask = self._batch.append_step()
            logits = self._forward(input_ids, mask, positions, self._batch.cache, last_only=False)
        except Exception as exc:
            logger.warning("decode step failed for %d row(s)", len(rows), exc_info=True)
            self._fail_running(exc)
            return
        for row in rows:
            row.num_tokens += 1
        self._drop(self._process(list(range(len(rows))), logits))

    def _drop(self, indices: list[int]) -> None:
        """Remove rows (finished, failed or cancelled) from the batch and its cache."""
        if not indices:
            return
        gone = set(indices)
        keep = [i for i in range(len(self._rows)) if i not in gone]
        if not keep:
            self._rows, self._batch = [], None
            return
        self._rows = [self._rows[i] for i in keep]
        if self._batch is not None:
            self._batch.select(keep, self._reshapable)

    def _process(self, indices: list[int], logits: torch.Tensor) -> list[int]:
        """Sample the next token of rows `indices` from their logits; returns finished rows."""
        import torch

        assert self._batch is not None
        rows = [self._rows[i] for i in indices]
        raw = logits.float()
        work = raw
        finished: list[int] = []
        try:
            params = SamplingTensors.build([r.sampling for r in rows], raw.device)
            index = torch.tensor(indices, device=raw.device)
            if params.any_penalty:
                seen = self._batch.seen.index_select(0, index)
                work = apply_repetition_penalty(work, seen, params.penalty)
            constraints = [r.constraint for r in rows]
            if any(c is not None for c in constraints):
                work = apply_constraints(work.clone() if work is raw else work, constraints)
            tokens = sample(work, params, [r.generator for r in rows])  # type: ignore[misc]
            logprobs = top_logprobs(raw, tokens, [r.logprobs_k for r in rows])
            self._batch.seen[index, tokens] = True
            token_list = tokens.tolist()
        except Exception as exc:  # sampling for these rows failed as a whole
            logger.warning("sampling failed for %d row(s)", len(rows), exc_info=True)
            err = _as_error(exc)
            for row in rows:
                row.handle.deliver(err)
            return list(indices)
        for i, row, token, lps in zip(indices, rows, token_list, logprobs, strict=True):
            try:
                if self._advance(row, token, lps):
                    finished.append(i)
            except Exception as exc:  # only this row is affected
                logger.warning("row failed after sampling", exc_info=True)
                row.handle.deliver(_as_error(exc))
                finished.append(i)
        return finished

    def _advance(self, row: _Row, token: int, lps: list[tuple[int, float]] | None) -> bool:
        """Account for one sampled token of `row`, stream what can be released; True if done."""
        row.generated += 1
        row.next_token = token
        if row.constraint is not None:
            row.constraint.accept(token)
        finish: FinishReason | None = None
        text = ""
        if token in self._end_ids:
            finish = "eos"
        else:
            row.pending_ids.append(token)
            if lps is not None:
                entry: dict[str, float] = {}
                for tid, lp in lps:
                    entry.setdefault(self._token_string(tid), lp)
                row.pending_logprobs.append(entry)
            row.text.push(token)
            text = row.text.take()
            if row.text.stopped:
                finish = "stop"
            elif row.generated >= row.max_new:
                finish = "length"
            elif row.constraint is not None and row.constraint.only_stop_allowed():
                # The JSON value is complete: end here rather than spend a step on the eos.
                finish = "eos"
        if finish is not None and finish != "stop":
            text += row.text.take(final=True)
        if text or finish is not None:
            row.handle.deliver(
                GenerationChunk(
                    text=text,
                    token_ids=row.pending_ids,
                    logprobs=row.pending_logprobs if row.logprobs_k > 0 else None,
                    finish_reason=finish,
                    prompt_tokens=len(row.prompt_ids),
                    completion_tokens=row.generated,
                )
            )
            row.pending_ids, row.pending_logprobs = [], []
        return finish is not None
