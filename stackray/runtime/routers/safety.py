"""SafetyRouter: resolves a shield id to its provider and runs it.

It owns the shields API (register/list/get/unregister; the registry is shared by all
replicas through the metadata store), `run_shield`, and the OpenAI-compatible
moderations, which run a shield on each input and report OpenAI's moderation object.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from stackray.api.common import UserMessage
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ConflictError, NotFoundError
from stackray.api.safety import (
    ListShieldsResponse,
    ModerationObject,
    ModerationResult,
    OpenAIModerationRequest,
    RegisterShieldRequest,
    RunShieldRequest,
    RunShieldResponse,
    SafetyViolation,
    Shield,
    ViolationLevel,
)
from stackray.providers.inline.safety.llama_guard.categories import (
    CATEGORIES,
    EXTRA_CATEGORIES,
    OPENAI_CATEGORIES,
    moderation_categories,
)
from stackray.runtime.access_control import Action
from stackray.runtime.resources import ResourceRegistry

SHIELDS = "shields"


class SafetyRouter:
    """Routes safety calls by shield id; serves the shields API and moderations."""

    def __init__(self, providers: dict[str, Any], registry: ResourceRegistry) -> None:
        self.providers = providers
        self.registry = registry

    async def health(self) -> None:
        """Raises if this router cannot serve (its store is unreachable)."""
        self.registry.store.get("health")

    # ---- shields ------------------------------------------------------------------------

    def _provider_for_new_shield(self, provider_id: str | None, shield_id: str) -> str:
        if provider_id is not None:
            if provider_id not in self.providers:
                raise BadRequestError(
                    f"no safety provider {provider_id!r} (providers: {', '.join(sorted(self.providers)) or 'none'})",
                    field="provider_id",
                )
            return provider_id
        if len(self.providers) == 1:
            return next(iter(self.providers))
        if not self.providers:
            raise BadRequestError(
                f"cannot register shield {shield_id!r}: this stack has no safety provider"
            )
        raise BadRequestError(
            f"provider_id is required to register shield {shield_id!r}: this stack has several "
            f"safety providers ({', '.join(sorted(self.providers))})",
            field="provider_id",
        )

    async def register_shield(self, request: RegisterShieldRequest) -> Shield:
        provider_id = self._provider_for_new_shield(request.provider_id, request.shield_id)
        shield = Shield(
            identifier=request.shield_id,
            provider_id=provider_id,
            provider_resource_id=request.provider_shield_id or request.shield_id,
            params=request.params,
        )
        existing = self.registry.get_for_create(Shield, SHIELDS, shield.identifier)
        if existing is not None:
            if (existing.provider_id, existing.provider_resource_id, existing.params or {}) == (
                shield.provider_id,
                shield.provider_resource_id,
                shield.params or {},
            ):
                return existing
            raise ConflictError(
                f"shield {shield.identifier!r} is already registered with provider "
                f"{existing.provider_id!r} as {existing.provider_resource_id!r}; unregister it first"
            )
        self.registry.require(Action.create, SHIELDS, shield.identifier)
        registered: Shield = await self.providers[provider_id].register_shield(shield)
        if not self.registry.put_if_absent(SHIELDS, registered.identifier, registered):
            # Another replica registered it meanwhile: the same shield is fine, another conflicts.
            return await self.register_shield(request)
        return registered

    def list_shields(self) -> ListShieldsResponse:
        return ListShieldsResponse(data=self.registry.list(Shield, SHIELDS))

    def get_shield(self, identifier: str, field: str = "identifier") -> Shield:
        shield = self.registry.get(Shield, SHIELDS, identifier)
        if shield is None:
            raise NotFoundError(
                f"shield {identifier!r} not found; GET /v1/shields lists the registered shields",
                field=field,
            )
        return shield

    async def unregister_shield(self, identifier: str) -> None:
        shield = self.get_shield(identifier)
        self.registry.require(Action.delete, SHIELDS, shield.identifier)
        provider = self.providers.get(shield.provider_id)
        if provider is not None:
            await provider.unregister_shield(shield)
        self.registry.delete(SHIELDS, shield.identifier)

    def _route(self, shield_id: str, field: str) -> tuple[Shield, Any]:
        shield = self.get_shield(shield_id, field=field)
        provider = self.providers.get(shield.provider_id)
        if provider is None:
            raise BadRequestError(
                f"shield {shield_id!r} belongs to provider {shield.provider_id!r}, which this stack does not run",
                field=field,
            )
        return shield, provider

    # ---- running shields ----------------------------------------------------------------

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        shield, provider = self._route(request.shield_id, "shield_id")
        if not request.messages:
            raise BadRequestError("messages must not be empty", field="messages")
        result: RunShieldResponse = await provider.run_shield(
            shield, request.messages, request.params
        )
        return result

    async def run_moderation(self, request: OpenAIModerationRequest) -> ModerationObject:
        """OpenAI's moderations: the shield named by `model` runs on each input alone."""
        shield_id = request.model
        if shield_id is None:
            shields = self.registry.list(Shield, SHIELDS)
            if len(shields) != 1:
                raise BadRequestError(
                    "model (the shield to run) is required: this stack has "
                    + (
                        f"shields {', '.join(s.identifier for s in shields)}"
                        if shields
                        else "no shields"
                    ),
                    field="model",
                )
            shield_id = shields[0].identifier
        shield, provider = self._route(shield_id, "model")
        inputs = [request.input] if isinstance(request.input, str) else request.input
        if not inputs:
            raise BadRequestError("input must not be empty", field="input")
        responses = await asyncio.gather(
            *(provider.run_shield(shield, [UserMessage(content=text)], {}) for text in inputs)
        )
        return ModerationObject(
            id=f"modr-{uuid.uuid4().hex}",
            model=shield.identifier,
            results=[moderation_result(r.violation) for r in responses],
        )


def violation_codes(violation: SafetyViolation) -> list[str]:
    """The categories a violation names in ``metadata['violation_type']`` (comma-separated)."""
    raw = violation.metadata.get("violation_type")
    if not isinstance(raw, str):
        return []
    return [code.strip() for code in raw.split(",") if code.strip()]


def moderation_result(violation: SafetyViolation | None) -> ModerationResult:
    """A shield's verdict as one OpenAI moderation result.

    Llama Guard codes (S1 ... S14) map onto OpenAI's categories; any other provider's
    violation types (``prompt_injection``, ``insecure_code`` ...) appear under their own
    names. An ``info`` violation is reported but not flagged.
    """
    flagged_categories: list[str] = []
    if violation is not None:
        codes = violation_codes(violation)
        flagged_categories = moderation_categories([c for c in codes if c.upper() in CATEGORIES])
        flagged_categories += [c for c in codes if c.upper() not in CATEGORIES]
    names = [*OPENAI_CATEGORIES, *EXTRA_CATEGORIES]
    names += [c for c in flagged_categories if c not in names]
    flagged = violation is not None and violation.violation_level != ViolationLevel.info
    return ModerationResult(
        flagged=flagged,
        categories={n: flagged and n in flagged_categories for n in names},
        category_scores={n: 1.0 if flagged and n in flagged_categories else 0.0 for n in names},
        category_applied_input_types={
            n: ["text"] if flagged and n in flagged_categories else [] for n in names
        },
        user_message=violation.user_message if violation is not None else None,
        metadata=dict(violation.metadata) if violation is not None else {},
    )


# ---- building the router ----------------------------------------------------------------


async def build_router(
    stack: Any, deps: dict[Api, Any], servers: dict[str, Any] | None = None
) -> SafetyRouter:
    """The safety router (`ROUTERS[Api.safety]`): its providers (given the APIs they
    call), then the run config's shields registered (idempotent: every replica does it)."""
    from stackray.runtime.resolver import build_providers
    from stackray.runtime.resources import open_registry

    providers = await build_providers(stack, Api.safety, deps, servers)
    router = SafetyRouter(providers, open_registry(stack))
    for shield in stack.shields:
        await router.register_shield(
            RegisterShieldRequest(
                shield_id=shield.shield_id,
                provider_id=shield.provider_id,
                provider_shield_id=shield.provider_shield_id,
                params=shield.params,
            )
        )
    return router
