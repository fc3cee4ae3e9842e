"""`inline::basic`: equality, subset_of, the regex parsers, docvqa, ifeval and bfcl.

A function registered with this provider is a builtin under another id, with its own
params (say, other parsing regexes): `provider_scoring_fn_id` names the builtin.
"""

from __future__ import annotations

import asyncio
from typing import Any

from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError
from stackray.api.scoring import ScoringFn, ScoringFnParams, ScoringResult
from stackray.providers.inline.scoring.basic.config import BasicScoringConfig
from stackray.providers.inline.scoring.basic.functions import BuiltinFunction, builtin_functions
from stackray.providers.utils.scoring import aggregate, check_rows
from stackray.runtime.resolver import ProviderContext


class BasicScoringProvider:
    """Scores rows with the builtin functions, in a worker thread (they are CPU work)."""

    def __init__(
        self, config: BasicScoringConfig, deps: dict[Api, Any], context: ProviderContext
    ) -> None:
        self.config = config
        self.context = context
        self.functions: dict[str, BuiltinFunction] = {}
        for builtin in builtin_functions():
            definition = builtin.definition.model_copy(update={"provider_id": context.provider_id})
            builtin = BuiltinFunction(
                definition, builtin.columns, builtin.score_row, builtin.params_type
            )
            self.functions[definition.identifier] = builtin
            assert definition.provider_resource_id is not None
            self.functions[definition.provider_resource_id] = builtin

    def builtin_functions(self) -> list[ScoringFn]:
        seen: dict[str, ScoringFn] = {}
        for builtin in self.functions.values():
            seen[builtin.definition.identifier] = builtin.definition
        return list(seen.values())

    def _builtin(self, fn: ScoringFn, field: str = "provider_scoring_fn_id") -> BuiltinFunction:
        name = fn.provider_resource_id or fn.identifier
        builtin = self.functions.get(name) or self.functions.get(fn.identifier)
        if builtin is None:
            names = sorted(b.definition.identifier for b in self.functions.values())
            raise BadRequestError(
                f"scoring function {fn.identifier!r}: the basic provider has no function "
                f"{name!r} (its functions: {', '.join(sorted(set(names)))})",
                field=field,
            )
        return builtin

    def _params(self, fn: ScoringFn, builtin: BuiltinFunction, params: ScoringFnParams | None):
        chosen = params or fn.params or builtin.definition.params
        if not isinstance(chosen, builtin.params_type):
            wanted = builtin.params_type.model_fields["type"].default.value
            raise BadRequestError(
                f"scoring function {fn.identifier!r} takes params of type {wanted!r}, got "
                f"{chosen.type.value if chosen is not None else 'none'!r}",
                field=f"scoring_functions.{fn.identifier}",
            )
        regexes = getattr(chosen, "parsing_regexes", None)
        if regexes is not None:
            if not regexes:
                raise BadRequestError(
                    f"scoring function {fn.identifier!r}: parsing_regexes is empty",
                    field=f"scoring_functions.{fn.identifier}.parsing_regexes",
                )
            import re

            for i, pattern in enumerate(regexes):
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise BadRequestError(
                        f"scoring function {fn.identifier!r}: parsing regex {pattern!r} is "
                        f"invalid ({e})",
                        field=f"scoring_functions.{fn.identifier}.parsing_regexes[{i}]",
                    ) from None
        return chosen

    async def register_scoring_function(self, fn: ScoringFn) -> ScoringFn:
        builtin = self._builtin(fn)
        self._params(fn, builtin, None)
        return fn

    async def score(
        self, fn: ScoringFn, params: ScoringFnParams | None, rows: list[dict[str, Any]]
    ) -> ScoringResult:
        builtin = self._builtin(fn, field="scoring_functions")
        chosen = self._params(fn, builtin, params)
        check_rows(rows, builtin.columns, fn.identifier, self.config.max_rows_per_request)

        def run() -> list[dict[str, Any]]:
            return [builtin.score_row(row, chosen) for row in rows]

        score_rows = await asyncio.to_thread(run) if len(rows) > 64 else run()
        return ScoringResult(
            score_rows=score_rows,
            aggregated_results=aggregate(score_rows, chosen.aggregation_functions),
        )
