"""Grammar-constrained decoding (JSON schema, or an EBNF grammar) with xgrammar.

One `GrammarFactory` per engine holds the tokenizer description and a cache of compiled
grammars (compiling a schema is cheap for small ones but not free, and clients tend to send the
same schema over and over). Each constrained row gets its own `RowConstraint`, a matcher that
says which tokens may come next as a packed bitmask, and is advanced with every sampled token.

The bitmask is applied with plain torch ops rather than xgrammar's kernels, so it works the
same on any device without Triton.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from stackray.api.errors import BadRequestError, ProviderError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

_MAX_CACHED_GRAMMARS = 64


class GrammarFactory:
    """Compiles JSON schemas into grammars for one tokenizer, with an LRU cache."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_token_ids: Iterable[int]) -> None:
        try:
            import xgrammar as xgr
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ProviderError(
                "structured output needs the 'xgrammar' package, which is not installed"
            ) from exc
        self._xgr = xgr
        self.vocab_size = vocab_size
        self.stop_token_ids = sorted(set(stop_token_ids))
        info = xgr.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=self.stop_token_ids
        )
        self._compiler = xgr.GrammarCompiler(info, max_threads=1)
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def compile_json_schema(self, schema: dict[str, Any]) -> Any:
        """The compiled grammar for `schema`; `BadRequestError` if xgrammar rejects it."""
        try:
            # Not sorted: property order matters, the grammar emits properties in schema order.
            key = json.dumps(schema)
        except (TypeError, ValueError) as exc:
            raise BadRequestError(f"json_schema is not JSON: {exc}", field="json_schema") from exc
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        try:
            # Compact JSON (no free whitespace): small models otherwise tend to wander into
            # long runs of spaces and newlines that the grammar happily allows.
            compiled = self._compiler.compile_json_schema(key, any_whitespace=False)
        except Exception as exc:
            raise BadRequestError(
                f"json_schema cannot be used for constrained decoding: {exc}", field="json_schema"
            ) from exc
        with self._lock:
            self._cache[key] = compiled
            while len(self._cache) > _MAX_CACHED_GRAMMARS:
                self._cache.popitem(last=False)
        return compiled

    def compile_ebnf(self, ebnf: str) -> Any:
        """The compiled grammar of an EBNF text (GBNF, llama.cpp's notation, with a `root`
        rule); `BadRequestError` naming the problem if it does not parse."""
        key = "ebnf:" + ebnf
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        try:
            compiled = self._compiler.compile_grammar(ebnf)
        except Exception as exc:
            raise BadRequestError(
                f"the grammar cannot be used for constrained decoding: {exc}",
                field="response_format.bnf",
            ) from exc
        with self._lock:
            self._cache[key] = compiled
            while len(self._cache) > _MAX_CACHED_GRAMMARS:
                self._cache.popitem(last=False)
        return compiled

    def new_row(self, schema: dict[str, Any]) -> RowConstraint:
        """A fresh matcher for one request constrained to `schema`."""
        return RowConstraint(self, self.compile_json_schema(schema))

    def new_grammar_row(self, ebnf: str) -> RowConstraint:
        """A fresh matcher for one request constrained to the grammar `ebnf`."""
        return RowConstraint(self, self.compile_ebnf(ebnf))


def ebnf_from_rules(bnf: dict[str, Any]) -> str:
    """The EBNF text of a `grammar` response format's `bnf`: a mapping of rule names to
    rule bodies in GBNF (llama.cpp's notation), with `root` the start rule."""
    if not isinstance(bnf, dict) or "root" not in bnf:
        raise BadRequestError(
            "bnf must map rule names to GBNF rule bodies, with a 'root' rule",
            field="response_format.bnf",
        )
    lines = []
    for name, body in bnf.items():
        if not isinstance(body, str) or not body.strip():
            raise BadRequestError(
                f"rule {name!r} must be a non-empty GBNF rule body",
                field=f"response_format.bnf.{name}",
            )
        if not name.replace("-", "").replace("_", "").isalnum():
            raise BadRequestError(
                f"rule name {name!r} must be letters, digits, '-' and '_'",
                field="response_format.bnf",
            )
        lines.append(f"{name} ::= {body}")
    return "\n".join(lines) + "\n"


class RowConstraint:
    """The grammar state of one generated sequence."""

    def __init__(self, factory: GrammarFactory, compiled: Any) -> None:
        import torch

        xgr = factory._xgr
        self._factory = factory
        self._matcher = xgr.GrammarMatcher(compiled)
        self._bitmask = xgr.allocate_token_bitmask(1, factory.vocab_size)
        self._shifts = torch.arange(32, dtype=torch.int32)
        self._allowed: torch.Tensor | None = None

    def allowed(self) -> torch.Tensor:
        """A `[vocab]` bool tensor (CPU) of tokens the grammar accepts next."""
        if self._allowed is None:
            self._matcher.fill_next_token_bitmask(self._bitmask, 0)
            bits = (self._bitmask[0].unsqueeze(-1) >> self._shifts) & 1
            self._allowed = bits.reshape(-1)[: self._factory.vocab_size].bool()
        return self._allowed

    def accept(self, token_id: int) -> None:
        """Advance past `token_id`; a rejected token is a bug in masking, so it raises."""
        if not self._matcher.accept_token(int(token_id)):
            raise ProviderError(f"constrained decoding: token {token_id} rejected by the grammar")
        self._allowed = None

    def only_stop_allowed(self) -> bool:
        """True when the value is complete and the grammar allows nothing but a stop token."""
        if self._matcher.is_terminated():
            return True
        allowed = self.allowed()
        count = int(allowed.sum())
        if count == 0:
            return True
        if count > len(self._factory.stop_token_ids):
            return False
        return all(int(t) in self._factory.stop_token_ids for t in allowed.nonzero()[:, 0])


def apply_constraints(
    logits: torch.Tensor, constraints: list[RowConstraint | None]
) -> torch.Tensor:
    """Set the logits of tokens a row's grammar forbids to `-inf` (rows without one untouched)."""
    import torch

    rows = [i for i, c in enumerate(constraints) if c is not None]
    if not rows:
        return logits
    vocab = logits.shape[-1]
    masks = []
    for i in rows:
        allowed = constraints[i].allowed()  # type: ignore[union-attr]
        if allowed.shape[0] < vocab:  # the model's vocab may be padded beyond the tokenizer's
            allowed = torch.cat([allowed, allowed.new_zeros(vocab - allowed.shape[0])])
        masks.append(allowed[:vocab])
    allowed_rows = torch.stack(masks).to(logits.device)
    index = torch.tensor(rows, device=logits.device)
    logits[index] = logits[index].masked_fill(~allowed_rows, float("-inf"))
    return logits
