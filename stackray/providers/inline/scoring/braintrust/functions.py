"""The builtin functions of `inline::braintrust`: their ids (as in Llama Stack 0.2.12), the
columns each reads, which models it needs, and the autoevals scorer that computes it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from autoevals.llm import Factuality
from autoevals.ragas import (
    AnswerCorrectness,
    AnswerRelevancy,
    AnswerSimilarity,
    ContextEntityRecall,
    ContextPrecision,
    ContextRecall,
    ContextRelevancy,
    Faithfulness,
)
from autoevals.string import EmbeddingSimilarity

QUERY, EXPECTED, GENERATED, CONTEXT = (
    "input_query",
    "expected_answer",
    "generated_answer",
    "context",
)


@dataclass(frozen=True)
class Models:
    """What a scorer runs with: autoevals' client over the stack, and the model ids."""

    client: Any
    judge: str | None
    embedding: str | None


# A row's scorer: the row's values (context joined into one text) → autoevals' Score.
Evaluate = Callable[[dict[str, str], Models], Awaitable[Any]]


@dataclass(frozen=True)
class BraintrustFunction:
    name: str
    description: str
    columns: tuple[str, ...]
    judge: bool
    embedding: bool
    evaluate: Evaluate

    @property
    def identifier(self) -> str:
        return f"braintrust::{self.name}"


async def _factuality(row: dict[str, str], m: Models) -> Any:
    scorer = Factuality(model=m.judge, client=m.client)
    return await scorer.eval_async(row[GENERATED], row[EXPECTED], input=row[QUERY])


async def _answer_correctness(row: dict[str, str], m: Models) -> Any:
    scorer = AnswerCorrectness(model=m.judge, embedding_model=m.embedding, client=m.client)
    return await scorer.eval_async(row[GENERATED], row[EXPECTED], input=row[QUERY])


async def _answer_relevancy(row: dict[str, str], m: Models) -> Any:
    scorer = AnswerRelevancy(model=m.judge, embedding_model=m.embedding, client=m.client)
    return await scorer.eval_async(row[GENERATED], input=row[QUERY], context=row[CONTEXT])


async def _answer_similarity(row: dict[str, str], m: Models) -> Any:
    scorer = AnswerSimilarity(model=m.embedding, client=m.client)
    return await scorer.eval_async(row[GENERATED], row[EXPECTED])


async def _faithfulness(row: dict[str, str], m: Models) -> Any:
    scorer = Faithfulness(model=m.judge, client=m.client)
    return await scorer.eval_async(row[GENERATED], input=row[QUERY], context=row[CONTEXT])


async def _context_entity_recall(row: dict[str, str], m: Models) -> Any:
    pairwise = EmbeddingSimilarity(model=m.embedding, client=m.client)
    scorer = ContextEntityRecall(pairwise_scorer=pairwise, model=m.judge, client=m.client)
    return await scorer.eval_async(row.get(GENERATED), row[EXPECTED], context=row[CONTEXT])


async def _context_precision(row: dict[str, str], m: Models) -> Any:
    scorer = ContextPrecision(model=m.judge, client=m.client)
    return await scorer.eval_async(
        row.get(GENERATED), row[EXPECTED], input=row[QUERY], context=row[CONTEXT]
    )


async def _context_recall(row: dict[str, str], m: Models) -> Any:
    scorer = ContextRecall(model=m.judge, client=m.client)
    return await scorer.eval_async(
        row.get(GENERATED), row[EXPECTED], input=row[QUERY], context=row[CONTEXT]
    )


async def _context_relevancy(row: dict[str, str], m: Models) -> Any:
    scorer = ContextRelevancy(model=m.judge, client=m.client)
    return await scorer.eval_async(row.get(GENERATED), input=row[QUERY], context=row[CONTEXT])


FUNCTIONS: tuple[BraintrustFunction, ...] = (
    BraintrustFunction(
        "factuality",
        "Whether the generated answer is factually consistent with the expected one "
        "(a subset, superset, the same, or in disagreement), by the judge model.",
        (QUERY, EXPECTED, GENERATED),
        judge=True,
        embedding=False,
        evaluate=_factuality,
    ),
    BraintrustFunction(
        "answer-correctness",
        "The generated answer's correctness against the expected one: the F1 of the "
        "judge's statement classification, weighted with their embedding similarity.",
        (QUERY, EXPECTED, GENERATED),
        judge=True,
        embedding=True,
        evaluate=_answer_correctness,
    ),
    BraintrustFunction(
        "answer-relevancy",
        "How well the generated answer addresses the question: the similarity of the "
        "question to questions the judge derives from the answer and context.",
        (QUERY, GENERATED, CONTEXT),
        judge=True,
        embedding=True,
        evaluate=_answer_relevancy,
    ),
    BraintrustFunction(
        "answer-similarity",
        "The embedding similarity of the generated and expected answers.",
        (EXPECTED, GENERATED),
        judge=False,
        embedding=True,
        evaluate=_answer_similarity,
    ),
    BraintrustFunction(
        "faithfulness",
        "The share of the generated answer's statements that the context supports, by "
        "the judge model.",
        (QUERY, GENERATED, CONTEXT),
        judge=True,
        embedding=False,
        evaluate=_faithfulness,
    ),
    BraintrustFunction(
        "context-entity-recall",
        "How many of the expected answer's entities the context holds (entities "
        "extracted by the judge, matched by embedding similarity).",
        (EXPECTED, CONTEXT),
        judge=True,
        embedding=True,
        evaluate=_context_entity_recall,
    ),
    BraintrustFunction(
        "context-precision",
        "Whether the context was useful for reaching the expected answer, by the judge.",
        (QUERY, EXPECTED, CONTEXT),
        judge=True,
        embedding=False,
        evaluate=_context_precision,
    ),
    BraintrustFunction(
        "context-recall",
        "The share of the expected answer's statements the context supports, by the judge.",
        (QUERY, EXPECTED, CONTEXT),
        judge=True,
        embedding=False,
        evaluate=_context_recall,
    ),
    BraintrustFunction(
        "context-relevancy",
        "The share of the context the judge finds relevant to the question.",
        (QUERY, CONTEXT),
        judge=True,
        embedding=False,
        evaluate=_context_relevancy,
    ),
)
