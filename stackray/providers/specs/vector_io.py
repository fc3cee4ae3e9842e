"""vector_io providers."""

from __future__ import annotations

from stackray.providers.spec import ProviderSpec

SPECS: tuple[ProviderSpec, ...] = ()
