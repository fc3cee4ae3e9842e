"""Settings of the `inline::meta-reference` agents provider."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from stackray.runtime.storage import StoreConfig


class MetaReferenceAgentsConfig(BaseModel):
    """Settings of `inline::meta-reference`: where agents, sessions and turns are kept, and
    how a turn's context is built."""

    model_config = ConfigDict(extra="forbid")

    persistence_store: StoreConfig | None = Field(
        default=None,
        description="Store of agents, sessions, turns and steps (SQLite or PostgreSQL); "
        "default a SQLite file agents_store.db under the provider's data directory.",
    )
    responses_store: StoreConfig | None = Field(
        default=None,
        description="Store of the OpenAI Responses API's stored responses (SQLite or "
        "PostgreSQL), as in Llama Stack 0.2.12; default the persistence store.",
    )
    context_window: int = Field(
        default=8192,
        ge=256,
        description="Tokens of context assumed for a model whose metadata has no "
        "`context_length`; a long session is truncated to fit (see docs/agents.md).",
    )
    reserved_output_tokens: int = Field(
        default=1024,
        ge=0,
        description="Tokens kept free for the answer when the agent's sampling params set "
        "no max_tokens.",
    )
    embedding_model: str | None = Field(
        default=None,
        description="Embedding model of the session vector dbs that hold a turn's "
        "documents; default the first embedding model the stack serves.",
    )
    chunk_size_words: int = Field(
        default=200, ge=16, description="Words per chunk when a document is ingested."
    )
    chunk_overlap_words: int = Field(
        default=20, ge=0, description="Words shared by consecutive chunks of a document."
    )
    memory_top_k: int = Field(
        default=3,
        ge=1,
        description="Chunks retrieved from the session vector db for a turn of an agent "
        "without the RAG tool.",
    )
