from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stackray.providers.inline.safety.llama_guard.categories import CATEGORIES


def check_categories(codes: list[str]) -> list[str]:
    """Upper-cased category codes; an unknown one is an error listing the known ones."""
    out = []
    for code in codes:
        if not isinstance(code, str) or code.upper() not in CATEGORIES:
            raise ValueError(
                f"unknown Llama Guard category {code!r} (categories: {', '.join(CATEGORIES)})"
            )
        out.append(code.upper())
    return out


class LlamaGuardConfig(BaseModel):
    """Settings of `inline::llama-guard`. The guard model is the shield's
    `provider_shield_id`: any llm registered with the Inference API."""

    model_config = ConfigDict(extra="forbid")

    excluded_categories: list[str] = Field(
        default_factory=list,
        description="Categories (S1 ... S14) left out of the prompt and ignored in answers; a shield's params may exclude more.",
    )
    prompt_format: Literal["chat", "completion"] = Field(
        default="chat",
        description="'chat': the prompt is one user message of a chat completion (for services that serve chat only); "
        "'completion': the prompt with Llama 3's header tokens goes to the completion route, as Llama Guard 3 was trained "
        "(use it when the server would otherwise wrap the prompt in the model's own chat template).",
    )
    max_tokens: int = Field(
        default=20, ge=2, description="Tokens the guard model may write for its verdict."
    )
    verdict_grammar: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="Decode the verdict under a grammar of Llama Guard's output format ('safe', or "
        "'unsafe' and a line of up to 3 checked categories), so any model gives one: 'always' sends "
        "the grammar as a `grammar` response format (the inference provider must take it); 'auto' "
        "when the guard model's provider is inline::transformers; 'never' sends none (a model that "
        "answers otherwise is then a 502).",
    )

    @field_validator("excluded_categories")
    @classmethod
    def _known(cls, codes: list[str]) -> list[str]:
        return check_categories(codes)
