"""Routes of the safety and shields APIs, and OpenAI's moderations."""

from __future__ import annotations

from fastapi.responses import Response

from stackray.api.datatypes import Api
from stackray.api.safety import OpenAIModerationRequest, RegisterShieldRequest, RunShieldRequest
from stackray.deployments.routes import Routes

SAFETY = Api.safety.value


def register(routes: Routes) -> None:
    call, json = routes.call, routes.json

    # ---- shields -----------------------------------------------------------------------

    async def list_shields() -> Response:
        return json(await call(SAFETY, "list_shields"))

    async def register_shield(body: RegisterShieldRequest) -> Response:
        return json(await call(SAFETY, "register_shield", body))

    async def get_shield(identifier: str) -> Response:
        return json(await call(SAFETY, "get_shield", identifier))

    async def unregister_shield(identifier: str) -> Response:
        await call(SAFETY, "unregister_shield", identifier)
        return json(None)

    routes.add(Api.shields, "GET", "/v1/shields", list_shields)
    routes.add(Api.shields, "POST", "/v1/shields", register_shield)
    routes.add(Api.shields, "GET", "/v1/shields/{identifier:path}", get_shield)
    routes.add(Api.shields, "DELETE", "/v1/shields/{identifier:path}", unregister_shield)

    # ---- safety ------------------------------------------------------------------------

    async def run_shield(body: RunShieldRequest) -> Response:
        return json(await call(SAFETY, "run_shield", body))

    async def moderations(body: OpenAIModerationRequest) -> Response:
        return json(await call(SAFETY, "run_moderation", body))

    routes.add(Api.safety, "POST", "/v1/safety/run-shield", run_shield)
    routes.add(Api.safety, "POST", "/moderations", moderations, openai=True)
