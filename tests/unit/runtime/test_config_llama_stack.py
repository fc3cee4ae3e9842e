"""Llama Stack 0.2.12 run config forms: conditional providers, the fields that have no
effect here (noted once, naming the field), logging levels, refused fields, store types.

The configs are written for these tests in the forms of 0.2.12's own templates."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError
from stackray.cli import main
from stackray.deployments.app import resolved_config
from stackray.runtime.config import LOG_CATEGORIES, parse_config
from stackray.runtime.storage import PostgresStoreConfig, SqliteStoreConfig


def stack(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "version": "2",
        "image_name": "compat",
        "apis": ["inference", "vector_io"],
        "providers": {
            "inference": [
                {
                    "provider_id": "sentence-transformers",
                    "provider_type": "inline::sentence-transformers",
                    "config": {},
                }
            ],
            "vector_io": [
                {
                    "provider_id": "sqlite-vec",
                    "provider_type": "inline::sqlite-vec",
                    "config": {"db_path": "${env.SQLITE_STORE_DIR:" + str(tmp_path) + "}/v.db"},
                },
                {
                    "provider_id": "${env.ENABLE_CHROMADB+chromadb}",
                    "provider_type": "remote::chromadb",
                    "config": {"url": "${env.CHROMADB_URL:}"},
                },
                {
                    "provider_id": "${env.ENABLE_PGVECTOR+pgvector}",
                    "provider_type": "remote::pgvector",
                    "config": {
                        "host": "${env.PGVECTOR_HOST:localhost}",
                        "port": "${env.PGVECTOR_PORT:5432}",
                        "db": "${env.PGVECTOR_DB:}",
                        "user": "${env.PGVECTOR_USER:}",
                        "password": "${env.PGVECTOR_PASSWORD:}",
                    },
                },
            ],
        },
        "storage": {"data_dir": str(tmp_path / "data")},
        **extra,
    }


def test_an_empty_conditional_provider_id_disables_the_provider(tmp_path):
    config = parse_config(stack(tmp_path), env={})
    assert [p.provider_id for p in config.providers_of(Api.vector_io)] == ["sqlite-vec"]


def test_a_set_conditional_enables_the_provider_and_its_config_is_validated(tmp_path):
    config = parse_config(
        stack(tmp_path),
        env={"ENABLE_CHROMADB": "1", "CHROMADB_URL": "http://127.0.0.1:8000"},
    )
    providers = {p.provider_id: p for p in config.providers_of(Api.vector_io)}
    assert set(providers) == {"sqlite-vec", "chromadb"}
    assert providers["chromadb"].config == {"url": "http://127.0.0.1:8000"}
    # Enabled without the URL it needs: refused, naming the field.
    with pytest.raises(ConfigError, match=r"providers\.vector_io\[1\]\.config\.url"):
        parse_config(stack(tmp_path), env={"ENABLE_CHROMADB": "1"})


def test_disabled_sentinel_and_other_forms(tmp_path):
    data = stack(tmp_path)
    data["providers"]["vector_io"][1]["provider_id"] = "__disabled__"
    data["providers"]["vector_io"][0]["config"]["db_path"] = "${env.STORE:=" + str(tmp_path) + "}/x"
    config = parse_config(data, env={})
    assert [p.provider_id for p in config.providers_of(Api.vector_io)] == ["sqlite-vec"]
    assert config.providers_of(Api.vector_io)[0].config["db_path"] == f"{tmp_path}/x"


def test_a_provider_without_an_id_is_still_refused(tmp_path):
    data = stack(tmp_path)
    del data["providers"]["vector_io"][0]["provider_id"]
    with pytest.raises(
        ConfigError, match=r"providers\.vector_io\[0\]\.provider_id: Field required"
    ):
        parse_config(data, env={})


@pytest.fixture()
def restore_levels() -> Iterator[None]:
    names = {n for names in LOG_CATEGORIES.values() for n in names}
    saved = {n: logging.getLogger(n).level for n in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_logging_category_levels_are_applied(tmp_path, restore_levels):
    config = parse_config(
        stack(tmp_path, logging={"category_levels": {"inference": "debug", "all": "warning"}}),
        env={},
    )
    config.apply_log_levels()
    assert logging.getLogger("stackray").level == logging.WARNING
    assert logging.getLogger("stackray.providers.remote.inference").level == logging.DEBUG
    assert logging.getLogger("stackray.providers.inline.inference").level == logging.DEBUG


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ({"inferense": "debug"}, "inferense: unknown log category"),
        ({"core": "loud"}, "core: unknown log level 'loud'"),
    ],
)
def test_logging_refuses_unknown_categories_and_levels(tmp_path, levels, message):
    with pytest.raises(ConfigError, match=rf"logging\.category_levels: Value error, {message}"):
        parse_config(stack(tmp_path, logging={"category_levels": levels}), env={})


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_fields_without_effect_are_noted_once_naming_the_field(tmp_path, caplog):
    path = write(
        tmp_path,
        stack(
            tmp_path,
            conda_env="ollama",
            container_image="distribution-ollama:0.2.12",
            external_providers_dir=str(tmp_path / "providers.d"),
        ),
    )
    with caplog.at_level(logging.WARNING, logger="stackray.deployments.app"):
        config, _ = resolved_config({"config": str(path)})
    notes = [r.getMessage() for r in caplog.records]
    assert config.conda_env == "ollama"
    assert len(notes) == 3
    for field in ("conda_env", "container_image", "external_providers_dir"):
        assert sum(f"{path}: {field}: has no effect here" in n for n in notes) == 1


def test_stackray_check_accepts_the_0_2_12_forms(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ENABLE_CHROMADB", raising=False)
    monkeypatch.delenv("ENABLE_PGVECTOR", raising=False)
    data = stack(
        tmp_path,
        conda_env="compat",
        metadata_store={
            "type": "sqlite",
            "namespace": None,
            "db_path": "${env.SQLITE_STORE_DIR:" + str(tmp_path) + "}/registry.db",
        },
        inference_store={"type": "sqlite", "db_path": str(tmp_path / "inference_store.db")},
        logging={"category_levels": {"server": "info"}},
        server={"port": 8321},
    )
    assert main(["check", "--skip-host-checks", str(write(tmp_path, data))]) == 0
    assert "compat: ok (inference, vector_io)" in capsys.readouterr().out


def test_server_quota_in_the_0_2_12_form_is_accepted(tmp_path):
    quota = {
        "kvstore": {"type": "sqlite", "db_path": str(tmp_path / "quota.db")},
        "anonymous_max_requests": 100,
        "authenticated_max_requests": 1000,
        "period": "day",
    }
    parsed = parse_config(stack(tmp_path, server={"port": 8321, "quota": quota}), env={})
    assert parsed.server.quota is not None
    assert parsed.server.quota.anonymous_max_requests == 100


def test_postgres_stores_in_the_0_2_12_form(tmp_path):
    form = {
        "type": "postgres",
        "host": "${env.POSTGRES_HOST:localhost}",
        "port": "${env.POSTGRES_PORT:5432}",
        "db": "${env.POSTGRES_DB:llamastack}",
        "user": "${env.POSTGRES_USER:llamastack}",
        "password": "${env.POSTGRES_PASSWORD:llamastack}",
        "table_name": "${env.POSTGRES_TABLE_NAME:llamastack_kvstore}",
    }
    sql_form = {k: v for k, v in form.items() if k != "table_name"}
    config = parse_config(
        stack(tmp_path, metadata_store=form, inference_store=sql_form),
        env={"POSTGRES_HOST": "db.internal", "POSTGRES_PORT": "6543"},
    )
    meta = config.metadata_store_config()
    assert isinstance(meta, PostgresStoreConfig)
    assert (meta.host, meta.port, meta.db, meta.user, meta.password, meta.table_name) == (
        "db.internal",
        6543,
        "llamastack",
        "llamastack",
        "llamastack",
        "llamastack_kvstore",
    )
    assert isinstance(config.inference_store_config(), PostgresStoreConfig)


def test_a_sqlite_store_path_from_the_environment_is_used(tmp_path):
    form = {"type": "sqlite", "namespace": None, "db_path": "${env.SQLITE_STORE_DIR:~/x}/r.db"}
    config = parse_config(
        stack(tmp_path, metadata_store=form), env={"SQLITE_STORE_DIR": str(tmp_path)}
    )
    meta = config.metadata_store_config()
    assert isinstance(meta, SqliteStoreConfig) and meta.db_path == f"{tmp_path}/r.db"


@pytest.mark.parametrize("kind", ["redis", "mongodb"])
def test_key_value_stores_without_sql_are_refused_naming_the_field(tmp_path, kind):
    with pytest.raises(
        ConfigError, match=rf"metadata_store: Value error, type '{kind}': .* not supported here"
    ):
        parse_config(
            stack(tmp_path, metadata_store={"type": kind, "host": "localhost", "port": 6379}),
            env={},
        )


def test_server_host_null_is_every_interface(tmp_path):
    config = parse_config(stack(tmp_path, server={"port": 8321, "host": None}), env={})
    assert (config.server.host, config.server.port) == ("0.0.0.0", 8321)


def test_a_llama_stack_external_provider_spec_is_named_in_the_refusal(tmp_path):
    specs = tmp_path / "providers.d" / "remote" / "inference"
    specs.mkdir(parents=True)
    (specs / "custom_ollama.yaml").write_text(
        "adapter:\n  adapter_type: custom_ollama\n  module: llama_stack_ollama_provider\n"
        "  config_class: llama_stack_ollama_provider.config.OllamaImplConfig\n"
        "api_dependencies: []\n"
    )
    data = stack(tmp_path, external_providers_dir=str(tmp_path / "providers.d"))
    data["providers"]["inference"].append(
        {"provider_id": "custom", "provider_type": "remote::custom_ollama", "config": {}}
    )
    with pytest.raises(ConfigError) as err:
        parse_config(data, env={})
    message = str(err.value)
    assert "providers.inference[1]: unknown provider_type 'remote::custom_ollama'" in message
    assert "custom_ollama.yaml is a Llama Stack external provider spec" in message
    assert "`module:`" in message
