"""tool_runtime providers."""

from __future__ import annotations

from stackray.providers.spec import ProviderSpec

SPECS: tuple[ProviderSpec, ...] = ()
