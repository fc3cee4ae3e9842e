"""How an API declares its HTTP routes: one `Route` per operation, next to the API's models.

Each API module ends with ``ROUTES: tuple[Route, ...]``; the gateway builds every endpoint
from these declarations (``stackray/deployments/routes.py``) and nothing else: the path,
the method, the request model it validates, the query parameters, the router method it
calls with them, the router method for a streamed answer, and the response model the
OpenAPI description shows.

A router method is called with the path parameters in path order, then the body, then
the query parameters in declaration order::

    Route("POST", "/v1/agents/{agent_id}/session", Api.agents, "create_agent_session",
          body=CreateAgentSessionRequest, returns=AgentSessionCreateResponse)
    # -> await agents.create_agent_session(agent_id, body)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from stackray.api.datatypes import Api

# OpenAI-compatible routes are served under both prefixes (the Llama Stack clients use the
# first, the OpenAI SDK with base_url=.../v1 the second).
OPENAI_PREFIXES = ("/v1/openai/v1", "/v1")

_PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


@dataclass(frozen=True)
class Param:
    """A query parameter: its name, its type (as FastAPI reads it) and its default.

    A ``list[str]`` parameter accepts the value repeated and comma-separated (the Llama
    Stack client sends a list as one comma-separated value)."""

    name: str
    annotation: Any = str | None
    default: Any = None


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """With ``{name}`` (or ``{name:path}``, taking the rest of the path) parameters;
    relative to the OpenAI prefixes when `openai` is set."""
    api: Api
    """The API the route belongs to (a routing-table API such as shields is served by its
    owner's deployment: safety)."""
    call: str
    """The router method answering the request."""
    body: Any = None
    """The request model (validated; the whole JSON body), or None."""
    query: tuple[Param, ...] = ()
    stream: str | None = None
    """The router method (an async generator) answering when the body has ``stream: true``:
    a server-sent event stream."""
    openai: bool = False
    returns: Any = None
    """The response model (documentation: the router's result is serialised as it is)."""
    empty: bool = False
    """Answer ``null`` whatever the router returns."""
    handler: str | None = None
    """A gateway handler for what is more than "call, answer JSON" (multipart uploads,
    raw downloads, extra fields for another SDK); see ``deployments/routes.py``."""

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(_PATH_PARAM.findall(self.path))

    @property
    def paths(self) -> tuple[str, ...]:
        if self.openai:
            return tuple(prefix + self.path for prefix in OPENAI_PREFIXES)
        return (self.path,)
