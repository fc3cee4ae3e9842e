"""Config errors as a person reads them: file, field path, message, the value given."""

from __future__ import annotations

from pydantic import ValidationError


def format_validation_error(err: ValidationError, source: str, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in e["loc"])
        loc = loc.replace(".[", "[")
        if prefix:
            loc = f"{prefix}.{loc}" if loc else prefix
        got = e.get("input")
        got_text = ""
        if e["type"] not in ("missing",) and not isinstance(got, dict | list):
            got_text = f" (got {got!r})"
        lines.append(f"{source}: {loc or '<root>'}: {e['msg']}{got_text}")
    return "\n".join(lines)


__all__ = ["format_validation_error"]
