"""Secrets never leave in logs, spans, errors or `/v1/providers`.

- `redact(value)`: a config mapping with every value under a secret-sounding key
  (``api_key``, ``token``, ``password``, ``client_secret`` ...) masked; what
  `/v1/providers` shows.
- `redact_text(text)`: `text` with every secret this process knows masked: the secret
  values of the run config (provider configs, `server.auth`), the secret values of the
  current request's provider data (``X-LlamaStack-Provider-Data``), and anything after
  ``Bearer `` or in an ``api_key=``-style pair.
- `install(stack)`: every log record this process makes (ours, Ray's, libraries') is
  passed through `redact_text` when it is created, so no handler sees the secret.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from stackray.runtime.request_context import current_provider_data, request_context_var

if TYPE_CHECKING:
    from stackray.runtime.config import StackConfig

MASK = "********"
SECRET_WORDS = ("key", "token", "password", "secret", "credential", "authorization")
MIN_SECRET_CHARS = 6
"""Shorter values are not masked inside free text: masking `abc` everywhere would garble
logs and protects nothing worth protecting."""

_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)((?:api[_-]?key|token|password|secret|client_secret)[\"']?\s*[:=]\s*[\"']?)"
        r"[^\s\"',}&]+"
    ),
)


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    if lowered.endswith(("_id", "_ids", "_type", "_path", "_file", "_url", "_uri")):
        return False  # key_id, tokenizer_path, token_url: names of things, not secrets
    return any(word in lowered for word in SECRET_WORDS)


def redact(value: Any, key: str = "") -> Any:
    """`value` with the strings under secret-sounding keys masked (recursively)."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if value and isinstance(value, str) and is_secret_key(key):
        return MASK
    return value


def secret_values(value: Any, key: str = "") -> set[str]:
    """The strings under secret-sounding keys in `value`."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            found |= secret_values(v, str(k))
    elif isinstance(value, list):
        for v in value:
            found |= secret_values(v, key)
    elif isinstance(value, str) and is_secret_key(key) and len(value) >= MIN_SECRET_CHARS:
        found.add(value)
    return found


class _Secrets:
    known: frozenset[str] = frozenset()


def remember(values: Iterable[str]) -> None:
    _Secrets.known = _Secrets.known | {v for v in values if len(v) >= MIN_SECRET_CHARS}


def redact_text(text: str) -> str:
    values = set(_Secrets.known)
    ctx = request_context_var.get()
    for provider_data in (current_provider_data(), ctx.provider_data if ctx else None):
        if provider_data:
            values |= secret_values(provider_data)
    # Longest first, so a secret containing another is masked whole.
    for secret in sorted(values, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def stack_secrets(stack: StackConfig) -> set[str]:
    found: set[str] = set()
    for providers in stack.providers.values():
        for provider in providers:
            found |= secret_values(provider.config)
    if stack.server.auth is not None:
        found |= secret_values(stack.server.auth.config)
    return found


_installed = False


def install(stack: StackConfig | None = None) -> None:
    """Mask secrets in every log record of this process from now on (idempotent; each
    call adds the secrets of `stack`)."""
    global _installed
    if stack is not None:
        remember(stack_secrets(stack))
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def redacting_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error path
            return record
        clean = redact_text(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact_text(
                logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
            )
        return record

    logging.setLogRecordFactory(redacting_record)
    _installed = True
