"""`inline::llama-guard`: Llama Guard 3 judged by a model served through the Inference API."""

from __future__ import annotations

from typing import Any

from stackray.api.common import (
    GrammarResponseFormat,
    GreedySamplingStrategy,
    JsonValue,
    Message,
    SamplingParams,
    UserMessage,
    interleaved_content_as_str,
)
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, NotFoundError, ProviderError
from stackray.api.inference import ChatCompletionRequest, CompletionRequest, InferenceApi
from stackray.api.models import ModelType
from stackray.api.safety import RunShieldResponse, SafetyViolation, Shield, ViolationLevel
from stackray.providers.inline.safety.llama_guard.categories import CATEGORIES
from stackray.providers.inline.safety.llama_guard.config import (
    LlamaGuardConfig,
    check_categories,
)
from stackray.providers.inline.safety.llama_guard.prompt import (
    RAW_TEMPLATE,
    VerdictError,
    build_prompt,
    judged_messages,
    parse_verdict,
    verdict_grammar,
)
from stackray.runtime.errors import unwrap
from stackray.runtime.resolver import ProviderContext

# Inference providers that take a `grammar` response format (GBNF rules).
GRAMMAR_PROVIDERS = frozenset({"inline::transformers", "inline::vllm", "inline::meta-reference"})


class LlamaGuardSafetyProvider:
    """Runs Llama Guard shields; a shield's `provider_resource_id` is its guard model."""

    def __init__(
        self, config: LlamaGuardConfig, deps: dict[Api, Any], context: ProviderContext
    ) -> None:
        self.config = config
        self.inference: InferenceApi = deps[Api.inference]
        self.context = context

    def _excluded(self, shield: Shield, params: dict[str, JsonValue] | None = None) -> set[str]:
        excluded = set(self.config.excluded_categories)
        for source in (shield.params or {}, params or {}):
            extra = source.get("excluded_categories")
            if extra is None:
                continue
            if not isinstance(extra, list):
                raise BadRequestError(
                    "excluded_categories must be a list of category codes (S1 ... S14)",
                    field="params.excluded_categories",
                )
            try:
                excluded.update(check_categories(extra))
            except ValueError as e:
                raise BadRequestError(str(e), field="params.excluded_categories") from None
        return excluded

    async def register_shield(self, shield: Shield) -> Shield:
        model_id = shield.provider_resource_id or shield.identifier
        try:
            model = await self.inference.get_model(model_id)
        except Exception as exc:
            if isinstance(unwrap(exc), NotFoundError):
                raise BadRequestError(
                    f"shield {shield.identifier!r}: its guard model {model_id!r} is not registered "
                    "with the Inference API (provider_shield_id names the model)",
                    field="provider_shield_id",
                ) from None
            raise
        if model.model_type != ModelType.llm:
            raise BadRequestError(
                f"shield {shield.identifier!r}: model {model_id!r} is an {model.model_type.value} model, not an llm",
                field="provider_shield_id",
            )
        self._excluded(shield)
        return shield

    async def unregister_shield(self, shield: Shield) -> None:
        return None

    async def run_shield(
        self, shield: Shield, messages: list[Message], params: dict[str, JsonValue]
    ) -> RunShieldResponse:
        excluded = self._excluded(shield, params)
        judged = judged_messages(messages)
        if not judged:
            raise BadRequestError(
                "Llama Guard judges user and assistant messages; the request has none",
                field="messages",
            )
        prompt = build_prompt(judged, excluded)
        answer = await self._ask(shield.provider_resource_id or shield.identifier, prompt, excluded)
        try:
            verdict = parse_verdict(answer, excluded)
        except VerdictError as e:
            raise ProviderError(
                f"cannot parse the verdict of guard model {shield.provider_resource_id!r} "
                f"for shield {shield.identifier!r} ({e}); it answered {answer[:200]!r}",
                provider_id=self.context.provider_id,
            ) from None
        if verdict.safe:
            return RunShieldResponse(violation=None)
        names = [f"{c}: {CATEGORIES[c]}" for c in verdict.categories]
        return RunShieldResponse(
            violation=SafetyViolation(
                violation_level=ViolationLevel.error,
                user_message="I can't help with that: it violates the safety policy"
                + (f" ({'; '.join(names)})." if names else "."),
                metadata={
                    "violation_type": ",".join(verdict.categories),
                    "categories": [{"code": c, "name": CATEGORIES[c]} for c in verdict.categories],
                    "judged_role": "assistant" if judged[-1].role == "assistant" else "user",
                },
            )
        )

    async def _constrained(self, model_id: str) -> bool:
        """Whether the verdict is decoded under Llama Guard's grammar (`verdict_grammar`)."""
        if self.config.verdict_grammar != "auto":
            return self.config.verdict_grammar == "always"
        model = await self.inference.get_model(model_id)
        types = {
            p.provider_id: p.provider_type for p in self.context.stack.providers_of(Api.inference)
        }
        return types.get(model.provider_id) in GRAMMAR_PROVIDERS

    async def _ask(self, model_id: str, prompt: str, excluded: set[str]) -> str:
        sampling = SamplingParams(
            strategy=GreedySamplingStrategy(), max_tokens=self.config.max_tokens
        )
        grammar = (
            GrammarResponseFormat(bnf=verdict_grammar(excluded))  # type: ignore[arg-type]
            if await self._constrained(model_id)
            else None
        )
        if self.config.prompt_format == "completion":
            completion = await self.inference.completion(
                CompletionRequest(
                    model_id=model_id,
                    content=RAW_TEMPLATE.format(prompt=prompt),
                    sampling_params=sampling,
                    response_format=grammar,
                )
            )
            return str(completion.content)
        chat = await self.inference.chat_completion(
            ChatCompletionRequest(
                model_id=model_id,
                messages=[UserMessage(content=prompt)],
                sampling_params=sampling,
                response_format=grammar,
            )
        )
        return interleaved_content_as_str(chat.completion_message.content)
