from __future__ import annotations

from stackray.providers.utils.scoring import ScoringProviderConfig


class BasicScoringConfig(ScoringProviderConfig):
    """Settings of the `inline::basic` scoring provider."""
