"""Routes of the scoring and scoring-functions APIs."""

from __future__ import annotations

from fastapi.responses import Response

from stackray.api.datatypes import Api
from stackray.api.scoring import RegisterScoringFunctionRequest, ScoreBatchRequest, ScoreRequest
from stackray.deployments.routes import Routes

SCORING = Api.scoring.value


def register(routes: Routes) -> None:
    call, json = routes.call, routes.json

    # ---- scoring functions -------------------------------------------------------------

    async def list_scoring_functions() -> Response:
        return json(await call(SCORING, "list_scoring_functions"))

    async def register_scoring_function(body: RegisterScoringFunctionRequest) -> Response:
        await call(SCORING, "register_scoring_function", body)
        return json(None)

    async def get_scoring_function(scoring_fn_id: str) -> Response:
        return json(await call(SCORING, "get_scoring_function", scoring_fn_id))

    routes.add(Api.scoring_functions, "GET", "/v1/scoring-functions", list_scoring_functions)
    routes.add(Api.scoring_functions, "POST", "/v1/scoring-functions", register_scoring_function)
    routes.add(
        Api.scoring_functions,
        "GET",
        "/v1/scoring-functions/{scoring_fn_id:path}",
        get_scoring_function,
    )

    # ---- scoring -----------------------------------------------------------------------

    async def score(body: ScoreRequest) -> Response:
        return json(await call(SCORING, "score", body))

    async def score_batch(body: ScoreBatchRequest) -> Response:
        return json(await call(SCORING, "score_batch", body))

    routes.add(Api.scoring, "POST", "/v1/scoring/score", score)
    routes.add(Api.scoring, "POST", "/v1/scoring/score-batch", score_batch)
