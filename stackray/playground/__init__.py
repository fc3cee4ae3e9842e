"""The playground: a browser page served by the gateway at ``/playground``.

Plain HTML, one stylesheet and one JavaScript module under ``static/``, shipped inside
the package; the page calls the stack's own JSON and SSE endpoints, so it needs no build
step and fetches nothing from elsewhere. See docs/playground.md.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
"""index.html, playground.css and playground.js."""
