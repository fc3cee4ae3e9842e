"""`BedrockTransport`: OpenAI-shaped requests carried to Bedrock through boto3.

boto3 blocks, so every call (and every read of a `converse_stream` event) runs in a worker
thread, off the replica's event loop. boto3 makes one attempt per call; this transport
retries throttling, 503 and connection failures with exponential backoff, as the HTTP
providers do. What goes wrong reaches clients as the stack's errors, naming the provider:

| Bedrock said / what happened                                  | error                      |
| ------------------------------------------------------------- | -------------------------- |
| ThrottlingException, ServiceQuotaExceeded, ModelNotReady (429) | `QuotaExceededError` (429) |
| ServiceUnavailableException, no connection                    | `ServiceUnavailableError` (503) |
| ModelTimeoutException, read/connect timeout                   | `ProviderTimeoutError` (504) |
| ValidationException                                           | `BadRequestError` (400)    |
| ResourceNotFoundException                                     | `NotFoundError` (404)      |
| AccessDenied, bad or missing credentials, any 5xx              | `ProviderError` (502)      |

(An AccessDenied is the stack's credentials at fault, not the client's request.)
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import random
import struct
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

from stackray.api.errors import (
    BadRequestError,
    ConfigError,
    NotFoundError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    ServiceUnavailableError,
    StackError,
)
from stackray.providers.remote.inference.bedrock import convert
from stackray.providers.remote.inference.bedrock.config import BedrockConfig
from stackray.runtime.request_context import current_provider_data

logger = logging.getLogger("stackray.providers.remote")

# Error codes, compared lower-case (exceptions inside a stream come as `throttlingException`).
_THROTTLED = {
    "throttlingexception",
    "servicequotaexceededexception",
    "modelnotreadyexception",
    "toomanyrequestsexception",
}
_UNAVAILABLE = {"serviceunavailableexception"}
_RETRIED = _THROTTLED | _UNAVAILABLE
_TIMEOUT = {"modeltimeoutexception"}
_BAD_REQUEST = {"validationexception", "modelerrorexception"}
_NOT_FOUND = {"resourcenotfoundexception"}
_CREDENTIALS = {
    "accessdeniedexception",
    "unrecognizedclientexception",
    "expiredtokenexception",
    "invalidsignatureexception",
    "signaturedoesnotmatch",
}
_END = object()
PROVIDER_DATA_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
"""Provider-data keys with which a request brings its own AWS credentials."""
MAX_REQUEST_CLIENTS = 8


def _code_and_status(exc: Any) -> tuple[str, int, str]:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    return str(error.get("Code") or ""), status, str(error.get("Message") or exc)


class BedrockTransport:
    """One provider's boto3 clients (Bedrock Runtime, and Bedrock for model listing)."""

    def __init__(self, provider_id: str, config: BedrockConfig) -> None:
        self.provider_id = provider_id
        self.config = config
        self.max_retries = (config.total_max_attempts or 3) - 1
        self._lock = threading.Lock()
        self._clients: dict[Any, Any] = {}
        self._session_started = 0.0
        self.base_url = f"Bedrock ({config.endpoint_url or config.region_name or 'default region'})"
        self.boto_client("bedrock-runtime")  # a missing region or profile fails at start

    # ---- boto3 -----------------------------------------------------------------------------

    def _session(self, credentials: tuple[str, str, str | None] | None = None) -> Any:
        import boto3

        c = self.config
        if credentials is not None:
            key_id, secret, token = credentials
            return boto3.session.Session(
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
                aws_session_token=token,
                region_name=c.region_name,
            )
        return boto3.session.Session(
            aws_access_key_id=c.aws_access_key_id,
            aws_secret_access_key=(
                c.aws_secret_access_key.get_secret_value() if c.aws_secret_access_key else None
            ),
            aws_session_token=(
                c.aws_session_token.get_secret_value() if c.aws_session_token else None
            ),
            region_name=c.region_name,
            profile_name=c.profile_name,
        )

    def request_credentials(self) -> tuple[str, str, str | None] | None:
        """AWS credentials the request brings in its provider data (`aws_access_key_id`,
        `aws_secret_access_key`, optionally `aws_session_token`), or None."""
        data = current_provider_data()
        if not isinstance(data, dict) or not any(k in data for k in PROVIDER_DATA_KEYS):
            return None
        values = {k: data.get(k) for k in PROVIDER_DATA_KEYS}
        for key, value in values.items():
            if value is not None and not isinstance(value, str):
                raise BadRequestError(
                    f"provider data {key!r} must be a string, got {type(value).__name__}"
                )
        key_id, secret, token = values.values()
        if not key_id or not secret:
            raise BadRequestError(
                f"provider '{self.provider_id}': provider data needs both "
                "'aws_access_key_id' and 'aws_secret_access_key'"
            )
        return str(key_id), str(secret), str(token) if token else None

    def boto_client(
        self, service: str, credentials: tuple[str, str, str | None] | None = None
    ) -> Any:
        """The boto3 client of `service` ('bedrock-runtime' or 'bedrock'), with the
        configured credentials or a request's own (`credentials`); made anew once the
        session is older than `session_ttl`."""
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, NoRegionError, ProfileNotFound

        with self._lock:
            ttl = self.config.session_ttl
            if ttl is not None and time.monotonic() - self._session_started > ttl:
                self._clients.clear()
            cache_key = service if credentials is None else (service, *credentials)
            client = self._clients.get(cache_key)
            if client is None:
                retries: dict[str, Any] = {"total_max_attempts": 1}
                if self.config.retry_mode:
                    retries["mode"] = self.config.retry_mode
                boto_config = Config(
                    connect_timeout=self.config.connect_timeout,
                    read_timeout=self.config.read_timeout,
                    retries=retries,
                    user_agent_extra="stackray",
                )
                endpoint = self.config.endpoint_url if service == "bedrock-runtime" else None
                try:
                    client = self._session(credentials).client(
                        service, config=boto_config, endpoint_url=endpoint
                    )
                except NoRegionError:
                    raise ConfigError(
                        f"provider '{self.provider_id}': no AWS region: set region_name in its "
                        "config or AWS_DEFAULT_REGION"
                    ) from None
                except (ProfileNotFound, BotoCoreError) as exc:
                    raise ConfigError(f"provider '{self.provider_id}': {exc}") from None
                if not self._clients:
                    self._session_started = time.monotonic()
                if credentials is not None:
                    # Clients of request credentials: the most recent few are kept.
                    own = [k for k in self._clients if isinstance(k, tuple)]
                    for old_key in own[: max(0, len(own) - MAX_REQUEST_CLIENTS + 1)]:
                        del self._clients[old_key]
                self._clients[cache_key] = client
            return client

    def error(self, exc: Exception, where: str) -> StackError:
        """The stack's error for what boto3 raised during `where`."""
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        name = f"provider '{self.provider_id}'"
        if isinstance(exc, ClientError):
            code, status, message = _code_and_status(exc)
            text = f"{name}: Bedrock {where} answered {status or ''} {code}: {message}".replace(
                "  ", " "
            )
            lowered = code.lower()
            if lowered in _THROTTLED or status == 429:
                return QuotaExceededError(text)
            if lowered in _UNAVAILABLE or status == 503:
                return ServiceUnavailableError(text)
            if lowered in _TIMEOUT:
                return ProviderTimeoutError(text)
            if lowered in _NOT_FOUND:
                return NotFoundError(text)
            if lowered in _CREDENTIALS or status in (401, 403):
                return ProviderError(
                    f"{text} (the stack's AWS credentials are refused: check the provider's "
                    "credentials, region and model access)",
                    provider_id=self.provider_id,
                )
            if lowered in _BAD_REQUEST or 400 <= status < 500:
                return BadRequestError(text)
            return ProviderError(text, provider_id=self.provider_id)
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return ProviderError(
                f"{name}: no usable AWS credentials ({exc}): set them in the provider's config, "
                "the environment or ~/.aws",
                provider_id=self.provider_id,
            )
        if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError)):
            return ProviderTimeoutError(f"{name}: Bedrock {where} timed out: {exc}")
        if isinstance(exc, EndpointConnectionError):
            return ServiceUnavailableError(f"{name}: cannot reach Bedrock for {where}: {exc}")
        return ProviderError(f"{name}: Bedrock {where} failed: {exc}", provider_id=self.provider_id)

    def _retryable(self, exc: Exception) -> bool:
        from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

        if isinstance(exc, ClientError):
            code, status, _ = _code_and_status(exc)
            return code.lower() in _RETRIED or status in (429, 503)
        return isinstance(exc, (EndpointConnectionError, ConnectTimeoutError))

    async def call(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """`client.<operation>(**params)` in a worker thread, with retries."""
        credentials = self.request_credentials()
        attempt = 0
        while True:
            try:
                client = await asyncio.to_thread(self.boto_client, service, credentials)
                method: Callable[..., dict[str, Any]] = getattr(client, operation)
                return await asyncio.to_thread(functools.partial(method, **params))
            except StackError:
                raise
            except ConfigError as exc:
                raise ProviderError(str(exc), provider_id=self.provider_id) from None
            except Exception as exc:  # boto3's errors: translated below
                if attempt >= self.max_retries or not self._retryable(exc):
                    raise self.error(exc, operation) from None
                delay = self.config.retry_backoff_s * 2**attempt
                delay += random.uniform(0, delay / 4)
                logger.info(
                    "provider %r: Bedrock %s: %s; retrying in %.2fs",
                    self.provider_id,
                    operation,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                attempt += 1

    # ---- the Transport protocol: OpenAI paths --------------------------------------------------

    async def request_json(
        self, method: str, path: str, body: Any = None, *, missing_ok: bool = False
    ) -> Any:
        if path == "models":
            return await self.list_models()
        if path == "chat/completions":
            call = convert.chat_to_converse(body)
            answer = await self.call("bedrock-runtime", "converse", call.params)
            return convert.chat_from_converse(call, answer)
        if path == "completions":
            call = convert.completion_to_converse(body)
            answer = await self.call("bedrock-runtime", "converse", call.params)
            return convert.completion_from_converse(call, answer)
        if path == "embeddings":
            return await self.embeddings(body)
        if missing_ok:
            return None
        raise BadRequestError(f"provider '{self.provider_id}': Bedrock has no {path} route")

    async def stream_sse(self, path: str, body: Any) -> AsyncGenerator[Any, None]:
        if path not in ("chat/completions", "completions"):
            raise BadRequestError(f"provider '{self.provider_id}': Bedrock cannot stream {path}")
        completion = path == "completions"
        call = (convert.completion_to_converse if completion else convert.chat_to_converse)(body)
        answer = await self.call("bedrock-runtime", "converse_stream", call.params)
        options = body.get("stream_options") or {}
        translator = convert.ConverseStreamTranslator(
            call,
            include_usage=bool(options.get("include_usage")) and not completion,
            completion=completion,
        )
        return self._stream(answer["stream"], translator)

    async def _stream(
        self, stream: Any, translator: convert.ConverseStreamTranslator
    ) -> AsyncGenerator[Any, None]:
        events: Iterator[dict[str, Any]] = iter(stream)
        try:
            while True:
                try:
                    event = await asyncio.to_thread(next, events, _END)
                except Exception as exc:  # an exception event mid-stream, or the connection
                    raise self.error(exc, "converse_stream") from None
                if event is _END:
                    return
                for chunk in translator.feed(event):  # type: ignore[arg-type]
                    yield chunk
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                await asyncio.to_thread(close)

    async def aclose(self) -> None:
        return None

    # ---- models and embeddings -------------------------------------------------------------------

    async def list_models(self) -> dict[str, Any]:
        """Bedrock's foundation models in OpenAI's listing shape (with their modalities)."""
        answer = await self.call("bedrock", "list_foundation_models", {})
        return {
            "object": "list",
            "data": [
                {
                    "id": item["modelId"],
                    "object": "model",
                    "owned_by": item.get("providerName") or "bedrock",
                    "output_modalities": item.get("outputModalities") or [],
                }
                for item in answer.get("modelSummaries") or []
            ],
        }

    async def embeddings(self, body: dict[str, Any], input_type: str | None = None) -> Any:
        model = str(body.get("model") or "")
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise BadRequestError(
                "input: texts are needed (token ids are not taken)", field="input"
            )
        bodies = convert.embedding_bodies(model, texts, body.get("dimensions"), input_type)
        answers = await asyncio.gather(
            *(
                self.call(
                    "bedrock-runtime",
                    "invoke_model",
                    {
                        "modelId": model,
                        "body": json.dumps(b),
                        "contentType": "application/json",
                        "accept": "application/json",
                    },
                )
                for b in bodies
            )
        )
        decoded = []
        for answer in answers:
            raw = await asyncio.to_thread(answer["body"].read)
            try:
                decoded.append(json.loads(raw))
            except ValueError:
                raise ProviderError(
                    f"provider '{self.provider_id}': Bedrock invoke_model answered no JSON",
                    provider_id=self.provider_id,
                ) from None
        try:
            vectors, tokens = convert.embeddings_from_answers(model, decoded)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError(
                f"provider '{self.provider_id}': unexpected embeddings answer from {model}: {exc!r}",
                provider_id=self.provider_id,
            ) from None
        base64_out = body.get("encoding_format") == "base64"
        return {
            "object": "list",
            "model": model,
            "data": [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": (
                        base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
                        if base64_out
                        else v
                    ),
                }
                for i, v in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
