"""`inline::llm-as-judge`: a judge model, any registered llm called through the Inference
API, grades each row.

The function's params (or the request's, which override them) give the judge model, the
prompt template (filled with the row's ``input_query``, ``expected_answer`` and
``generated_answer``) and the regexes: the first group of the first one that matches the
judge's answer is the row's score (None when none matches), and the answer itself is the
row's ``judge_feedback``. Rows are judged concurrently, at most `max_concurrency` at once.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from stackray.api.common import (
    GreedySamplingStrategy,
    SamplingParams,
    UserMessage,
    interleaved_content_as_str,
)
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, NotFoundError
from stackray.api.inference import ChatCompletionRequest
from stackray.api.models import ModelType
from stackray.api.scoring import (
    AggregationFunctionType,
    LLMAsJudgeScoringFnParams,
    NumberType,
    ScoringFn,
    ScoringFnParams,
    ScoringResult,
)
from stackray.providers.inline.scoring.llm_as_judge.config import LlmAsJudgeScoringConfig
from stackray.providers.inline.scoring.llm_as_judge.prompts import BASE_TEMPLATE, SIMPLEQA_GRADER
from stackray.providers.utils.scoring import aggregate, check_rows
from stackray.runtime.errors import unwrap
from stackray.runtime.resolver import ProviderContext

DEFAULT_JUDGE = "meta-llama/Llama-3.1-405B-Instruct"
COLUMNS = ("input_query", "expected_answer", "generated_answer")


class LlmAsJudgeScoringProvider:
    """Grades rows with a judge model."""

    def __init__(
        self, config: LlmAsJudgeScoringConfig, deps: dict[Api, Any], context: ProviderContext
    ) -> None:
        self.config = config
        self.inference = deps[Api.inference]
        self.context = context

    def builtin_functions(self) -> list[ScoringFn]:
        judge = self.config.judge_model or DEFAULT_JUDGE
        pid = self.context.provider_id
        return [
            ScoringFn(
                identifier="llm-as-judge::base",
                description="Llm As Judge Scoring Function",
                return_type=NumberType(),
                provider_id=pid,
                provider_resource_id="llm-as-judge-base",
                params=LLMAsJudgeScoringFnParams(judge_model=judge, prompt_template=BASE_TEMPLATE),
            ),
            ScoringFn(
                identifier="llm-as-judge::405b-simpleqa",
                description="Llm As Judge Scoring Function for SimpleQA Benchmark "
                "(https://github.com/openai/simple-evals/blob/main/simpleqa_eval.py)",
                return_type=NumberType(),
                provider_id=pid,
                provider_resource_id="llm-as-judge-405b-simpleqa",
                params=LLMAsJudgeScoringFnParams(
                    judge_model=judge,
                    prompt_template=SIMPLEQA_GRADER,
                    judge_score_regexes=[r"(A|B|C)"],
                    aggregation_functions=[AggregationFunctionType.categorical_count],
                ),
            ),
        ]

    async def _check(self, fn: ScoringFn, params: ScoringFnParams | None, field: str) -> Any:
        if not isinstance(params, LLMAsJudgeScoringFnParams):
            raise BadRequestError(
                f"scoring function {fn.identifier!r} takes params of type 'llm_as_judge' "
                "(judge_model, prompt_template, judge_score_regexes)",
                field=field,
            )
        try:
            model = await self.inference.get_model(params.judge_model)
        except Exception as exc:
            if isinstance(unwrap(exc), NotFoundError):
                raise BadRequestError(
                    f"scoring function {fn.identifier!r}: judge model {params.judge_model!r} "
                    "is not registered with the Inference API",
                    field=f"{field}.judge_model",
                ) from None
            raise
        if model.model_type != ModelType.llm:
            raise BadRequestError(
                f"scoring function {fn.identifier!r}: judge model {params.judge_model!r} is "
                f"an {model.model_type.value} model, not an llm",
                field=f"{field}.judge_model",
            )
        template = params.prompt_template
        if not template or template == BASE_TEMPLATE:
            raise BadRequestError(
                f"scoring function {fn.identifier!r} needs a prompt_template (with "
                "{input_query}, {expected_answer} and {generated_answer})",
                field=f"{field}.prompt_template",
            )
        try:
            template.format(input_query="", expected_answer="", generated_answer="")
        except (KeyError, IndexError, ValueError) as e:
            raise BadRequestError(
                f"scoring function {fn.identifier!r}: the prompt_template does not format "
                f"({type(e).__name__}: {e}); it may use {{input_query}}, {{expected_answer}} "
                "and {generated_answer}, with other braces doubled",
                field=f"{field}.prompt_template",
            ) from None
        if not params.judge_score_regexes:
            raise BadRequestError(
                f"scoring function {fn.identifier!r} needs judge_score_regexes (the first "
                "group of the first that matches is the score)",
                field=f"{field}.judge_score_regexes",
            )
        for i, pattern in enumerate(params.judge_score_regexes):
            try:
                re.compile(pattern)
            except re.error as e:
                raise BadRequestError(
                    f"scoring function {fn.identifier!r}: judge score regex {pattern!r} is "
                    f"invalid ({e})",
                    field=f"{field}.judge_score_regexes[{i}]",
                ) from None
        return params

    async def register_scoring_function(self, fn: ScoringFn) -> ScoringFn:
        await self._check(fn, fn.params, "params")
        return fn

    async def score(
        self, fn: ScoringFn, params: ScoringFnParams | None, rows: list[dict[str, Any]]
    ) -> ScoringResult:
        field = f"scoring_functions.{fn.identifier}"
        checked: LLMAsJudgeScoringFnParams = await self._check(fn, params or fn.params, field)
        check_rows(rows, COLUMNS, fn.identifier, self.config.max_rows_per_request)
        gate = asyncio.Semaphore(self.config.max_concurrency)

        async def judge(row: dict[str, Any]) -> dict[str, Any]:
            assert checked.prompt_template is not None
            prompt = checked.prompt_template.format(
                input_query=row["input_query"],
                expected_answer=row["expected_answer"],
                generated_answer=row["generated_answer"],
            )
            async with gate:
                response = await self.inference.chat_completion(
                    ChatCompletionRequest(
                        model_id=checked.judge_model,
                        messages=[UserMessage(content=prompt)],
                        sampling_params=SamplingParams(
                            strategy=GreedySamplingStrategy(), max_tokens=self.config.max_tokens
                        ),
                    )
                )
            answer = interleaved_content_as_str(response.completion_message.content)
            rating = None
            for pattern in checked.judge_score_regexes:
                match = re.search(pattern, answer)
                if match:
                    rating = match.group(1) if match.groups() else match.group(0)
                    break
            return {"score": rating, "judge_feedback": answer}

        score_rows = list(await asyncio.gather(*(judge(row) for row in rows)))
        return ScoringResult(
            score_rows=score_rows,
            aggregated_results=aggregate(score_rows, checked.aggregation_functions),
        )
