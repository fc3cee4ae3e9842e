"""Routes of the files API."""

from __future__ import annotations

from stackray.deployments.routes import Routes


def register(routes: Routes) -> None:
    pass
