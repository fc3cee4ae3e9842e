"""`${env.VAR}` interpolation for run configs.

Forms (as in Llama Stack run.yaml files):

- ``${env.VAR}``            the value of VAR; an error if VAR is unset
- ``${env.VAR:default}``    VAR if set and non-empty, else ``default``
- ``${env.VAR:=default}``   same as above (the newer spelling)
- ``${env.VAR+value}``      ``value`` if VAR is set and non-empty, else empty (0.2.12's
                            spelling of the conditional)
- ``${env.VAR:+value}``     same as above (the newer spelling)

As in Llama Stack 0.2.12, a substituted value that starts with ``~`` has it expanded to
the home directory (``${env.STORE_DIR:~/.llama}/registry.db``).

A string that interpolates to exactly empty becomes ``None``, so optional fields can be
switched off from the environment (``api_key: ${env.KEY:+${env.KEY}}``), and so can a
whole provider (``provider_id: ${env.ENABLE_CHROMADB+chromadb}``; see
`stackray.runtime.config.drop_disabled_providers`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from stackray.api.errors import ConfigError

# Innermost-first: a value may itself contain ${env...} (e.g. the :+ form), so substitute
# the innermost expressions repeatedly until none is left.
_PATTERN = re.compile(
    r"\$\{env\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:=|:\+|:|\+)(?P<arg>[^${}]*))?\}"
)


def interpolate(value: Any, env: Mapping[str, str] | None = None, path: str = "") -> Any:
    """Return `value` with every ``${env...}`` expression in its strings substituted."""
    env = os.environ if env is None else env
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${env." not in value:
        return value
    return _interpolate_str(value, env, path)


def _interpolate_str(text: str, env: Mapping[str, str], path: str) -> str | None:
    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        current = env.get(name)
        if op is None:
            if current is None:
                raise ConfigError(
                    f"{path or 'value'}: environment variable {name} is not set "
                    f"(use ${{env.{name}:=default}} to give a default)"
                )
            return os.path.expanduser(current)
        if op in (":+", "+"):
            return os.path.expanduser(arg) if current else ""
        return os.path.expanduser(current if current else arg)

    for _ in range(16):
        new = _PATTERN.sub(substitute, text)
        if new == text:
            break
        text = new
    if "${env." in text:
        raise ConfigError(f"{path or 'value'}: cannot parse environment reference in {text!r}")
    return text if text != "" else None
