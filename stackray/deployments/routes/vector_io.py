"""Routes of the vector_io API."""

from __future__ import annotations

from stackray.deployments.routes import Routes


def register(routes: Routes) -> None:
    pass
