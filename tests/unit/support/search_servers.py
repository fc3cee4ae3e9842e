"""Stand-ins for the web services behind the search tools, on a real socket (FakeService):
Tavily (``POST /search``), Brave (``GET /res/v1/web/search``), Bing (``GET /v7.0/search``)
and Wolfram|Alpha (``GET /v2/query``). Each checks its key where the real one expects it
(`KEY`) and answers with the shape the real service documents (fields trimmed, values
made up); a wrong key gets the service's own error answer.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.unit.support.remote_servers import FakeService

KEY = "test-key-123"


def tavily_answer(query: str, n: int) -> dict[str, Any]:
    results = [
        {
            "title": f"Result {i} for {query}",
            "url": f"https://example.com/{i}",
            "content": f"Snippet {i} about {query}.",
            "score": round(0.9 - i * 0.1, 2),
            "raw_content": None,
        }
        for i in range(5)
    ]
    return {
        "query": query,
        "follow_up_questions": None,
        "answer": None,
        "images": [],
        "results": results[:n],
        "response_time": 1.02,
    }


def brave_answer(query: str, n: int) -> dict[str, Any]:
    return {
        "type": "search",
        "query": {"original": query, "show_strict_warning": False, "is_navigational": False},
        "mixed": {"type": "mixed", "main": [{"type": "web", "index": 0, "all": False}]},
        "web": {
            "type": "search",
            "results": [
                {
                    "title": f"Brave result {i}: {query}",
                    "url": f"https://brave.example/{i}",
                    "is_source_local": False,
                    "description": f"<strong>{query}</strong> description {i}",
                    "age": "2 days ago",
                    "profile": {"name": "Example", "url": "https://brave.example"},
                    "language": "en",
                    "family_friendly": True,
                    "type": "search_result",
                    "extra_snippets": [f"extra {i}"],
                }
                for i in range(n)
            ],
            "family_friendly": True,
        },
    }


def bing_answer(query: str, n: int) -> dict[str, Any]:
    return {
        "_type": "SearchResponse",
        "queryContext": {"originalQuery": query},
        "webPages": {
            "webSearchUrl": f"https://www.bing.com/search?q={query}",
            "totalEstimatedMatches": 1230000,
            "value": [
                {
                    "id": f"https://api.bing.microsoft.com/api/v7/#WebPages.{i}",
                    "name": f"Bing page {i}: {query}",
                    "url": f"https://bing.example/{i}",
                    "isFamilyFriendly": True,
                    "displayUrl": f"bing.example/{i}",
                    "snippet": f"Bing snippet {i} on {query}",
                    "dateLastCrawled": "2026-11-20T10:00:00.0000000Z",
                    "language": "en",
                    "isNavigational": False,
                }
                for i in range(n)
            ],
        },
        "rankingResponse": {"mainline": {"items": []}},
    }


def wolfram_answer(query: str) -> dict[str, Any]:
    if query == "gibberish":
        return {
            "queryresult": {
                "success": False,
                "error": False,
                "numpods": 0,
                "datatypes": "",
                "timedout": "",
                "tips": {"text": "Check your spelling, and use English"},
            }
        }
    return {
        "queryresult": {
            "success": True,
            "error": False,
            "numpods": 2,
            "datatypes": "Math",
            "pods": [
                {
                    "title": "Input",
                    "scanner": "Identity",
                    "id": "Input",
                    "position": 100,
                    "error": False,
                    "numsubpods": 1,
                    "subpods": [{"title": "", "plaintext": query}],
                },
                {
                    "title": "Result",
                    "scanner": "Simplification",
                    "id": "Result",
                    "position": 200,
                    "error": False,
                    "numsubpods": 1,
                    "primary": True,
                    "subpods": [{"title": "", "plaintext": "4"}],
                },
            ],
        }
    }


WOLFRAM_BAD_APPID = {
    "queryresult": {
        "success": False,
        "error": {"code": "1", "msg": "Invalid appid"},
        "numpods": 0,
    }
}


def search_app(service: FakeService) -> FastAPI:
    app = FastAPI()

    @app.post("/search")
    async def tavily(request: Request) -> Response:
        body, _, early = await service.intake(request)
        if early is not None:
            return early
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse(
                {"detail": {"error": "Unauthorized: missing or invalid API key."}}, 401
            )
        return JSONResponse(tavily_answer(body["query"], int(body.get("max_results", 5))))

    @app.get("/res/v1/web/search")
    async def brave(request: Request) -> Response:
        _, _, early = await service.intake(request)
        if early is not None:
            return early
        if request.headers.get("x-subscription-token") != KEY:
            error = {
                "id": "c1",
                "status": 422,
                "code": "SUBSCRIPTION_TOKEN_INVALID",
                "detail": "The provided subscription token is invalid.",
            }
            return JSONResponse({"type": "ErrorResponse", "error": error}, 422)
        params = request.query_params
        return JSONResponse(brave_answer(params["q"], int(params.get("count", 20))))

    @app.get("/v7.0/search")
    async def bing(request: Request) -> Response:
        _, _, early = await service.intake(request)
        if early is not None:
            return early
        if request.headers.get("ocp-apim-subscription-key") != KEY:
            error = {
                "code": "401",
                "message": "Access denied due to invalid subscription key.",
            }
            return JSONResponse({"error": error}, 401)
        params = request.query_params
        return JSONResponse(bing_answer(params["q"], int(params.get("count", 10))))

    @app.get("/v2/query")
    async def wolfram(request: Request) -> Response:
        _, _, early = await service.intake(request)
        if early is not None:
            return early
        params = request.query_params
        if params.get("appid") != KEY:
            return JSONResponse(WOLFRAM_BAD_APPID)
        return JSONResponse(wolfram_answer(params["input"]))

    return app
