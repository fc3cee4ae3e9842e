"""The run config: Llama Stack 0.2.12's run.yaml plus stackray's `deployments:` and `storage:`.

One loader (`load_config`) reads YAML, interpolates ``${env...}``, validates every field
(including each provider's own config class) and reports problems as
``ConfigError("<file>: <field.path>: <what was expected>")`` before anything starts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError
from stackray.runtime.auth import AuthConfig
from stackray.runtime.config_errors import format_validation_error
from stackray.runtime.envsubst import interpolate
from stackray.runtime.provider_config import validate_providers
from stackray.runtime.quota import QuotaConfig
from stackray.runtime.storage import SqliteStoreConfig, StoreConfig

DEFAULT_PORT = 8321


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Provider(_Strict):
    """One provider instance of an API."""

    provider_id: str = Field(
        description="Unique id of this provider instance, used to route resources to it."
    )
    provider_type: str = Field(
        description="Registry name, e.g. 'inline::transformers' or 'remote::vllm'."
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Provider settings, validated against the provider's own config class.",
    )
    module: str | None = Field(
        default=None,
        description="External provider: an importable module whose `get_provider_spec()` returns its ProviderSpec.",
    )


class ModelInput(_Strict):
    """A model registered when the stack starts."""

    model_id: str = Field(description="The id clients use.")
    provider_id: str | None = Field(
        default=None, description="Provider serving it; the only one of the API if omitted."
    )
    provider_model_id: str | None = Field(
        default=None, description="The provider's name for it; defaults to model_id."
    )
    model_type: Literal["llm", "embedding"] = Field(default="llm", description="llm or embedding.")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free-form metadata, e.g. embedding_dimension."
    )


class ShieldInput(_Strict):
    shield_id: str = Field(description="The id clients use.")
    provider_id: str | None = Field(default=None, description="Safety provider enforcing it.")
    provider_shield_id: str | None = Field(default=None, description="The provider's name for it.")
    params: dict[str, Any] | None = Field(default=None, description="Shield parameters.")


class VectorDBInput(_Strict):
    vector_db_id: str = Field(description="The id clients use.")
    embedding_model: str = Field(description="Embedding model id.")
    embedding_dimension: int | None = Field(
        default=None, description="Dimension of the embeddings."
    )
    provider_id: str | None = Field(default=None, description="Vector IO provider holding it.")
    provider_vector_db_id: str | None = Field(
        default=None, description="The provider's name for it."
    )


class DatasetInput(_Strict):
    dataset_id: str = Field(description="The id clients use.")
    purpose: Literal["post-training/messages", "eval/question-answer", "eval/messages-answer"] = (
        Field(description="post-training/messages, eval/question-answer or eval/messages-answer.")
    )
    source: dict[str, Any] = Field(description="{type: uri, uri} or {type: rows, rows}.")
    provider_id: str | None = Field(default=None, description="DatasetIO provider.")
    metadata: dict[str, Any] | None = Field(default=None, description="Free-form metadata.")

    @field_validator("source")
    @classmethod
    def _valid_source(cls, source: dict[str, Any]) -> dict[str, Any]:
        from stackray.api.datasetio import DataSource

        TypeAdapter(DataSource).validate_python(source)
        return source


class ScoringFnInput(_Strict):
    scoring_fn_id: str = Field(description="The id clients use.")
    description: str = Field(default="", description="What it scores.")
    return_type: dict[str, Any] = Field(
        default_factory=lambda: {"type": "number"}, description="Return type."
    )
    provider_id: str | None = Field(default=None, description="Scoring provider.")
    provider_scoring_fn_id: str | None = Field(
        default=None, description="The provider's name for it."
    )
    params: dict[str, Any] | None = Field(default=None, description="Scoring function parameters.")

    @field_validator("return_type")
    @classmethod
    def _valid_return_type(cls, value: dict[str, Any]) -> dict[str, Any]:
        from stackray.api.scoring import ParamType

        TypeAdapter(ParamType).validate_python(value)
        return value

    @field_validator("params")
    @classmethod
    def _valid_params(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        from stackray.api.scoring import ScoringFnParams

        if value is not None:
            TypeAdapter(ScoringFnParams).validate_python(value)
        return value


class BenchmarkInput(_Strict):
    benchmark_id: str = Field(description="The id clients use.")
    dataset_id: str = Field(description="Dataset evaluated.")
    scoring_functions: list[str] = Field(description="Scoring function ids.")
    provider_id: str | None = Field(default=None, description="Eval provider.")
    provider_benchmark_id: str | None = Field(
        default=None, description="The provider's name for it."
    )
    metadata: dict[str, Any] | None = Field(default=None, description="Free-form metadata.")


class ToolGroupInput(_Strict):
    toolgroup_id: str = Field(description="The id clients use, e.g. builtin::rag.")
    provider_id: str = Field(description="Tool runtime provider.")
    args: dict[str, Any] | None = Field(
        default=None, description="Arguments given to every tool call."
    )
    mcp_endpoint: dict[str, Any] | None = Field(default=None, description="{uri} of an MCP server.")


LOG_LEVELS = ("CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTSET")

LOG_CATEGORIES: dict[str, tuple[str, ...]] = {
    "all": ("stackray",),
    "core": ("stackray.runtime", "stackray.providers"),
    "server": ("stackray.deployments", "stackray.cli"),
    "router": ("stackray.runtime.routers",),
    "inference": ("stackray.providers.inline.inference", "stackray.providers.remote.inference"),
    "agents": ("stackray.providers.inline.agents",),
    "safety": ("stackray.providers.inline.safety", "stackray.providers.remote.safety"),
    "tools": (
        "stackray.providers.inline.tool_runtime",
        "stackray.providers.remote.tool_runtime",
    ),
    "eval": ("stackray.jobs",),
    "client": ("llama_stack_client",),
}
"""Llama Stack 0.2.12's log categories and the loggers each sets here."""


class LoggingConfig(_Strict):
    """Log levels per category, as in Llama Stack 0.2.12 (`logging.category_levels`)."""

    category_levels: dict[str, str] = Field(
        default_factory=dict,
        description="Level (debug, info, warning, error, critical) per category: all, "
        + ", ".join(c for c in LOG_CATEGORIES if c != "all")
        + ".",
    )

    @field_validator("category_levels")
    @classmethod
    def _known(cls, levels: dict[str, str]) -> dict[str, str]:
        for category, level in levels.items():
            if category not in LOG_CATEGORIES:
                raise ValueError(
                    f"{category}: unknown log category (categories: {', '.join(LOG_CATEGORIES)})"
                )
            if str(level).upper() not in LOG_LEVELS:
                raise ValueError(
                    f"{category}: unknown log level {level!r} (levels: debug, info, warning, "
                    "error, critical)"
                )
        return levels

    def apply(self) -> None:
        """Set the levels of the loggers of each category (`all` first, so a category's
        own level wins)."""
        ordered = sorted(self.category_levels.items(), key=lambda item: item[0] != "all")
        for category, level in ordered:
            for name in LOG_CATEGORIES[category]:
                logging.getLogger(name).setLevel(str(level).upper())


class ServerConfig(_Strict):
    """HTTP server settings."""

    port: int = Field(
        default=DEFAULT_PORT, ge=1, le=65535, description="Port of the HTTP endpoint."
    )
    host: str = Field(default="0.0.0.0", description="Address the HTTP endpoint binds.")
    tls_certfile: str | None = Field(default=None, description="TLS certificate file.")
    tls_keyfile: str | None = Field(default=None, description="TLS key file.")
    tls_cafile: str | None = Field(default=None, description="TLS CA file.")
    auth: AuthConfig | None = Field(
        default=None,
        description="Authentication of requests and access rules of resources (docs/security.md).",
    )
    disable_ipv6: bool = Field(default=False, description="Bind IPv4 only.")
    quota: QuotaConfig | None = Field(
        default=None, description="Requests per period per caller (docs/security.md)."
    )

    @field_validator("host", mode="before")
    @classmethod
    def _default_host(cls, value: object) -> object:
        # Llama Stack 0.2.12's `host: null` means its default: every interface.
        return "0.0.0.0" if value is None else value


class AutoscalingConfig(_Strict):
    """Ray Serve autoscaling for one deployment."""

    min_replicas: int = Field(default=1, ge=0, description="Fewest replicas.")
    max_replicas: int = Field(default=1, ge=1, description="Most replicas.")
    initial_replicas: int | None = Field(default=None, ge=0, description="Replicas at start.")
    target_ongoing_requests: float = Field(
        default=2.0, gt=0, description="In-flight requests per replica to aim for."
    )
    upscale_delay_s: float = Field(
        default=30.0, ge=0, description="Sustained load before adding replicas."
    )
    downscale_delay_s: float = Field(
        default=600.0, ge=0, description="Sustained idleness before removing replicas."
    )


class RayActorOptions(_Strict):
    """Resources each replica asks Ray for."""

    num_cpus: float | None = Field(default=None, ge=0, description="CPUs per replica.")
    num_gpus: float | None = Field(
        default=None,
        ge=0,
        description="GPUs per replica; model servers default to 1 when the cluster has GPUs.",
    )
    memory: int | None = Field(
        default=None, ge=0, description="Bytes of memory reserved per replica."
    )
    accelerator_type: str | None = Field(default=None, description="e.g. A100, H100, L4.")
    resources: dict[str, float] | None = Field(default=None, description="Custom Ray resources.")


class DeploymentOptions(_Strict):
    """Ray Serve options for one deployment (keyed by API name, 'gateway', or a model server's provider_id)."""

    num_replicas: int | None = Field(
        default=None, ge=1, description="Fixed replica count (ignored with autoscaling)."
    )
    autoscaling_config: AutoscalingConfig | None = Field(
        default=None, description="Autoscaling instead of a fixed count."
    )
    max_ongoing_requests: int | None = Field(
        default=None, ge=1, description="Requests one replica runs at once."
    )
    max_queued_requests: int | None = Field(
        default=None, description="Requests queued per caller before 503; -1 is unbounded."
    )
    ray_actor_options: RayActorOptions | None = Field(
        default=None, description="Resources per replica."
    )
    health_check_period_s: float | None = Field(
        default=None, gt=0, description="Seconds between health checks."
    )
    health_check_timeout_s: float | None = Field(
        default=None, gt=0, description="Health check timeout."
    )
    graceful_shutdown_timeout_s: float | None = Field(
        default=None, ge=0, description="Drain time on shutdown."
    )

    def to_serve_options(self) -> dict[str, Any]:
        """The keyword arguments for `serve.deployment(...).options(...)`."""
        opts = self.model_dump(exclude_none=True)
        if "ray_actor_options" in opts:
            opts["ray_actor_options"] = {
                k: v for k, v in opts["ray_actor_options"].items() if v is not None
            }
        if self.autoscaling_config is not None:
            opts.pop("num_replicas", None)
        return opts


class StorageConfig(_Strict):
    """Where the stack keeps its state."""

    data_dir: str | None = Field(
        default=None,
        description="Directory for stores, model caches and provider data; default ~/.stackray/<image_name>.",
    )


class StackConfig(_Strict):
    """A whole stack: which APIs, which providers, which resources, how to deploy them."""

    version: int | str = Field(
        default=2, description="Config format version (2 as in Llama Stack 0.2.x)."
    )
    image_name: str = Field(
        description="Name of this stack (the distribution); names its data directory."
    )
    container_image: str | None = Field(
        default=None,
        description="The container image of a Llama Stack distribution; has no effect here "
        "(noted at start): replicas run in the Ray cluster's own environment.",
    )
    conda_env: str | None = Field(
        default=None,
        description="The conda environment of a Llama Stack distribution; has no effect "
        "here (noted at start): replicas run in the Ray cluster's own environment.",
    )
    apis: list[Api] = Field(description="The APIs to serve.")
    providers: dict[Api, list[Provider]] = Field(
        default_factory=dict, description="Providers per API."
    )
    metadata_store: StoreConfig | None = Field(
        default=None, description="Registry of resources; default SQLite under the data directory."
    )
    inference_store: StoreConfig | None = Field(
        default=None,
        description="Stored chat completions; default SQLite under the data directory.",
    )
    models: list[ModelInput] = Field(
        default_factory=list, description="Models registered at start."
    )
    shields: list[ShieldInput] = Field(
        default_factory=list, description="Shields registered at start."
    )
    vector_dbs: list[VectorDBInput] = Field(
        default_factory=list, description="Vector DBs registered at start."
    )
    datasets: list[DatasetInput] = Field(
        default_factory=list, description="Datasets registered at start."
    )
    scoring_fns: list[ScoringFnInput] = Field(
        default_factory=list, description="Scoring functions registered at start."
    )
    benchmarks: list[BenchmarkInput] = Field(
        default_factory=list, description="Benchmarks registered at start."
    )
    tool_groups: list[ToolGroupInput] = Field(
        default_factory=list, description="Tool groups registered at start."
    )
    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP server settings.")
    logging: LoggingConfig | None = Field(
        default=None, description="Log levels per category, applied in every process."
    )
    external_providers_dir: str | None = Field(
        default=None,
        description="Llama Stack 0.2.12's directory of external provider specs; has no "
        "effect here (noted at start): name an external provider's module with `module:`.",
    )
    deployments: dict[str, DeploymentOptions] = Field(
        default_factory=dict,
        description="Ray Serve options per deployment: an API name, 'gateway', or a provider_id.",
    )
    storage: StorageConfig = Field(default_factory=StorageConfig, description="State locations.")

    @field_validator("apis")
    @classmethod
    def _unique_apis(cls, apis: list[Api]) -> list[Api]:
        return list(dict.fromkeys(apis))

    @field_validator("deployments")
    @classmethod
    def _no_inference_deployment(
        cls, deployments: dict[str, DeploymentOptions]
    ) -> dict[str, DeploymentOptions]:
        # Options for a deployment that does not exist would be silently ignored.
        if Api.inference.value in deployments:
            raise ValueError(
                "inference: the inference API has no deployment of its own (its router runs "
                "in the gateway and in each deployment that calls inference); set options "
                "on 'gateway', or on a model server by its provider_id"
            )
        return deployments

    @model_validator(mode="after")
    def _nothing_parsed_and_ignored(self) -> StackConfig:
        """Fields of Llama Stack's run config that this version does not act on are
        refused, naming the field: accepted and ignored, TLS would be a security trap."""
        server = self.server
        for name in ("tls_certfile", "tls_keyfile", "tls_cafile"):
            if getattr(server, name) is not None:
                raise ValueError(
                    f"server.{name}: TLS is not terminated by this version; remove the field "
                    "and terminate TLS in front of the stack (load balancer, ingress)"
                )
        if server.disable_ipv6 and ":" in server.host:
            raise ValueError(
                f"server.disable_ipv6: the server binds {server.host!r}, an IPv6 address; "
                "bind an IPv4 address (e.g. 0.0.0.0) instead"
            )
        if self.datasets and Api.datasetio not in self.apis:
            raise ValueError(
                "datasets: registering datasets needs the datasetio API; add it to `apis`"
            )
        if self.scoring_fns and Api.scoring not in self.apis:
            raise ValueError(
                "scoring_fns: registering scoring functions needs the scoring API; add it to `apis`"
            )
        if self.benchmarks and Api.eval not in self.apis:
            raise ValueError(
                "benchmarks: registering benchmarks needs the eval API; add it to `apis`"
            )
        return self

    # ---- derived settings -------------------------------------------------------------

    def apply_log_levels(self) -> None:
        """Set this process's log levels from `logging.category_levels` (every replica
        calls it at start, so the levels hold in every process)."""
        if self.logging is not None:
            self.logging.apply()

    def no_effect_notices(self) -> list[str]:
        """One line per field that is accepted (Llama Stack run configs carry it) but has
        no effect here, naming the field; printed once when the stack starts or is checked."""
        notices = []
        for name, why in (
            ("container_image", "replicas run in the Ray cluster's own environment"),
            ("conda_env", "replicas run in the Ray cluster's own environment"),
            (
                "external_providers_dir",
                "external providers are named by `module:` on the provider entry",
            ),
        ):
            if getattr(self, name) is not None:
                notices.append(f"{name}: has no effect here ({why})")
        return notices

    @property
    def data_dir(self) -> Path:
        base = self.storage.data_dir or os.path.join("~", ".stackray", self.image_name)
        return Path(os.path.expanduser(base))

    def metadata_store_config(self) -> StoreConfig:
        return self.metadata_store or SqliteStoreConfig(db_path=str(self.data_dir / "registry.db"))

    def inference_store_config(self) -> StoreConfig:
        return self.inference_store or SqliteStoreConfig(
            db_path=str(self.data_dir / "inference_store.db")
        )

    def providers_of(self, api: Api) -> list[Provider]:
        return self.providers.get(api, [])

    def deployment_options(self, name: str) -> DeploymentOptions:
        return self.deployments.get(name, DeploymentOptions())


def parse_config(
    data: Any, source: str = "<config>", env: dict[str, str] | None = None
) -> StackConfig:
    """Validate an already-loaded config mapping; errors name `source` and the field path."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        data = interpolate(data, env)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    data = drop_disabled_providers(data)
    try:
        config = StackConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None
    validate_providers(config, source)
    return config


DISABLED_PROVIDER_ID = "__disabled__"


def drop_disabled_providers(data: dict[str, Any]) -> dict[str, Any]:
    """The config without its disabled providers: as in Llama Stack 0.2.12, a provider
    whose `provider_id` is empty (``provider_id: ${env.ENABLE_CHROMADB+chromadb}`` with the
    variable unset) or ``__disabled__`` is not started, and its config is not validated."""
    providers = data.get("providers")
    if not isinstance(providers, dict):
        return data
    kept: dict[str, Any] = {}
    for api, entries in providers.items():
        if isinstance(entries, list):
            entries = [
                e
                for e in entries
                if not (
                    isinstance(e, dict)
                    and "provider_id" in e
                    and e["provider_id"] in (None, "", DISABLED_PROVIDER_ID)
                )
            ]
        kept[api] = entries
    return {**data, "providers": kept}


def resolve_config_path(name_or_path: str) -> Path:
    """A path to a YAML file, or the name of a bundled distribution (`local`, ...)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    distributions = Path(__file__).resolve().parent.parent / "distributions"
    if "/" not in name_or_path and (distributions / name_or_path / "run.yaml").is_file():
        return distributions / name_or_path / "run.yaml"
    known = sorted(p.parent.name for p in distributions.glob("*/run.yaml"))
    raise ConfigError(
        f"{name_or_path}: no such config file, and not a distribution name (distributions: {', '.join(known)})"
    )


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping in a run config file. A YAML syntax error names the file, the line and
    column (1-based), what the parser expected there, and shows the line."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        raise ConfigError(_yaml_error(path, text, e)) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _yaml_error(path: Path, text: str, error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    problem = error.problem or error.context or "syntax error"
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    message = f"{where}: invalid YAML: {problem}"
    if error.context and error.problem:
        message += f" ({error.context}"
        if error.context_mark and error.context_mark is not mark:
            cm = error.context_mark
            message += f" that starts at line {cm.line + 1}, column {cm.column + 1}"
        message += ")"
    lines = text.splitlines()
    if mark and mark.line < len(lines):
        shown = lines[mark.line].replace("\t", " ")
        message += f"\n    {shown}\n    {' ' * mark.column}^"
    return message


def load_config(name_or_path: str, env: dict[str, str] | None = None) -> StackConfig:
    """Load a run config from a YAML file or a distribution name."""
    path = resolve_config_path(name_or_path)
    return parse_config(read_config_file(path), str(path), env)
