"""The Scoring and ScoringFunctions APIs: registered scoring functions and scoring rows."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import Field

from stackray.api.common import ApiModel, JsonValue
from stackray.api.datatypes import Api, ResourceType
from stackray.api.routes import Route

Row = dict[str, JsonValue]

# ---------------------------------------------------------------------------------------
# Parameter types (the return type of a scoring function)
# ---------------------------------------------------------------------------------------


class StringType(ApiModel):
    type: Literal["string"] = "string"


class NumberType(ApiModel):
    type: Literal["number"] = "number"


class BooleanType(ApiModel):
    type: Literal["boolean"] = "boolean"


class ArrayType(ApiModel):
    type: Literal["array"] = "array"


class ObjectType(ApiModel):
    type: Literal["object"] = "object"


class JsonType(ApiModel):
    type: Literal["json"] = "json"


class UnionType(ApiModel):
    type: Literal["union"] = "union"


class ChatCompletionInputType(ApiModel):
    type: Literal["chat_completion_input"] = "chat_completion_input"


class CompletionInputType(ApiModel):
    type: Literal["completion_input"] = "completion_input"


class AgentTurnInputType(ApiModel):
    type: Literal["agent_turn_input"] = "agent_turn_input"


ParamType = Annotated[
    StringType
    | NumberType
    | BooleanType
    | ArrayType
    | ObjectType
    | JsonType
    | UnionType
    | ChatCompletionInputType
    | CompletionInputType
    | AgentTurnInputType,
    Field(discriminator="type"),
]

# ---------------------------------------------------------------------------------------
# Scoring function parameters
# ---------------------------------------------------------------------------------------


class AggregationFunctionType(str, Enum):
    average = "average"
    weighted_average = "weighted_average"
    median = "median"
    categorical_count = "categorical_count"
    accuracy = "accuracy"


class ScoringFnParamsType(str, Enum):
    llm_as_judge = "llm_as_judge"
    regex_parser = "regex_parser"
    basic = "basic"


class LLMAsJudgeScoringFnParams(ApiModel):
    """A judge model's verdict: `prompt_template` is filled with the row's
    ``input_query``, ``expected_answer`` and ``generated_answer``; the first group of the
    first of `judge_score_regexes` to match the answer is the score."""

    type: Literal[ScoringFnParamsType.llm_as_judge] = ScoringFnParamsType.llm_as_judge
    judge_model: str
    prompt_template: str | None = None
    judge_score_regexes: list[str] = Field(default_factory=list)
    aggregation_functions: list[AggregationFunctionType] = Field(default_factory=list)


class RegexParserScoringFnParams(ApiModel):
    """The answer is the first group of the first of `parsing_regexes` to match."""

    type: Literal[ScoringFnParamsType.regex_parser] = ScoringFnParamsType.regex_parser
    parsing_regexes: list[str] = Field(default_factory=list)
    aggregation_functions: list[AggregationFunctionType] = Field(default_factory=list)


class BasicScoringFnParams(ApiModel):
    type: Literal[ScoringFnParamsType.basic] = ScoringFnParamsType.basic
    aggregation_functions: list[AggregationFunctionType] = Field(default_factory=list)


ScoringFnParams = Annotated[
    LLMAsJudgeScoringFnParams | RegexParserScoringFnParams | BasicScoringFnParams,
    Field(discriminator="type"),
]

# ---------------------------------------------------------------------------------------
# Scoring functions
# ---------------------------------------------------------------------------------------


class ScoringFn(ApiModel):
    """A registered scoring function."""

    identifier: str
    provider_resource_id: str | None = None
    provider_id: str
    type: Literal[ResourceType.scoring_function] = ResourceType.scoring_function
    description: str | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    return_type: ParamType
    params: ScoringFnParams | None = None


class RegisterScoringFunctionRequest(ApiModel):
    """The body of `POST /v1/scoring-functions`."""

    scoring_fn_id: str
    description: str
    return_type: ParamType
    provider_scoring_fn_id: str | None = None
    provider_id: str | None = None
    params: ScoringFnParams | None = None


class ListScoringFunctionsResponse(ApiModel):
    data: list[ScoringFn]


# ---------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------


class ScoringResult(ApiModel):
    """One function's scores: one row per input row, and the aggregated metrics."""

    score_rows: list[Row]
    aggregated_results: dict[str, JsonValue]


class ScoreRequest(ApiModel):
    """The body of `POST /v1/scoring/score`: each function, with params overriding its own
    (or null)."""

    input_rows: list[Row]
    scoring_functions: dict[str, ScoringFnParams | None]


class ScoreResponse(ApiModel):
    results: dict[str, ScoringResult]


class ScoreBatchRequest(ApiModel):
    """The body of `POST /v1/scoring/score-batch`: score a dataset's rows."""

    dataset_id: str
    scoring_functions: dict[str, ScoringFnParams | None]
    save_results_dataset: bool = False


class ScoreBatchResponse(ApiModel):
    dataset_id: str | None = None
    results: dict[str, ScoringResult]


# ---------------------------------------------------------------------------------------
# What a scoring provider implements
# ---------------------------------------------------------------------------------------


@runtime_checkable
class ScoringProvider(Protocol):
    """Scores rows with the functions it implements.

    The router owns the scoring function registry; at start it registers each
    provider's builtin functions, and a function registered later is checked by its
    provider (which refuses one it cannot run, naming why)."""

    def builtin_functions(self) -> list[ScoringFn]: ...

    async def register_scoring_function(self, fn: ScoringFn) -> ScoringFn: ...

    async def score(
        self, fn: ScoringFn, params: ScoringFnParams | None, rows: list[dict[str, Any]]
    ) -> ScoringResult:
        """Score `rows` with `fn` (its params overridden by `params` when given)."""
        ...


ROUTES = (
    Route(
        "GET",
        "/v1/scoring-functions",
        Api.scoring_functions,
        "list_scoring_functions",
        returns=ListScoringFunctionsResponse,
    ),
    Route(
        "POST",
        "/v1/scoring-functions",
        Api.scoring_functions,
        "register_scoring_function",
        body=RegisterScoringFunctionRequest,
        empty=True,
    ),
    Route(
        "GET",
        "/v1/scoring-functions/{scoring_fn_id:path}",
        Api.scoring_functions,
        "get_scoring_function",
        returns=ScoringFn,
    ),
    Route(
        "POST", "/v1/scoring/score", Api.scoring, "score", body=ScoreRequest, returns=ScoreResponse
    ),
    Route(
        "POST",
        "/v1/scoring/score-batch",
        Api.scoring,
        "score_batch",
        body=ScoreBatchRequest,
        returns=ScoreBatchResponse,
    ),
)
