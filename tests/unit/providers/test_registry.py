"""Provider registry, resolver and external providers."""

import asyncio

import pytest

from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError
from stackray.providers.registry import BUILTIN_PROVIDERS, import_object, spec_for
from stackray.runtime.config import Provider, parse_config
from stackray.runtime.resolver import instantiate_provider
from stackray.runtime.routers import router_order


def test_builtin_specs_point_at_real_classes():
    for spec in BUILTIN_PROVIDERS:
        assert callable(import_object(spec.impl)), spec.impl
        config_cls = import_object(spec.config_class)
        for name, field in config_cls.model_fields.items():
            assert field.description, f"{spec.config_class}.{name} has no description"


def test_external_provider_by_module():
    provider = Provider(provider_id="echo", provider_type="remote::echo", module="stackray_echo")
    spec = spec_for(provider, Api.inference)
    assert spec.provider_type == "remote::echo"
    config = {
        "version": 2,
        "image_name": "ext",
        "apis": ["inference"],
        "providers": {"inference": [provider.model_dump()]},
    }
    stack = parse_config(config)
    impl = asyncio.run(
        instantiate_provider(Api.inference, stack.providers_of(Api.inference)[0], stack)
    )
    assert type(impl).__name__ == "EchoInferenceProvider"
    assert impl.provider_id == "echo"


def test_external_provider_type_mismatch():
    provider = Provider(provider_id="echo", provider_type="remote::other", module="stackray_echo")
    with pytest.raises(ConfigError, match="provides 'remote::echo'"):
        spec_for(provider, Api.inference)


def test_external_provider_missing_module():
    provider = Provider(provider_id="x", provider_type="remote::x", module="no_such_module_here")
    with pytest.raises(ConfigError, match="cannot import external provider module"):
        spec_for(provider, Api.inference)


def test_external_provider_config_validated():
    config = {
        "version": 2,
        "image_name": "ext",
        "apis": ["inference"],
        "providers": {
            "inference": [
                {
                    "provider_id": "e",
                    "provider_type": "remote::echo",
                    "module": "stackray_echo",
                    "config": {"dimension": 0},
                }
            ]
        },
    }
    with pytest.raises(ConfigError, match=r"providers.inference\[0\].config.dimension"):
        parse_config(config)


def test_api_order_puts_dependencies_first():
    stack = parse_config({"version": 2, "image_name": "t", "apis": ["inference"], "providers": {}})
    assert router_order(stack) == [Api.inference]
    stack = parse_config(
        {
            "version": 2,
            "image_name": "t",
            "apis": ["agents", "inference"],
            "providers": {
                "agents": [{"provider_id": "a", "provider_type": "inline::meta-reference"}]
            },
        }
    )
    assert router_order(stack) == [Api.inference, Api.agents]


def test_providers_doc_lists_every_provider_and_config_field():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "providers.md").read_text()
    for spec in BUILTIN_PROVIDERS:
        assert f"`{spec.provider_type}`" in doc, spec.provider_type
        for name in import_object(spec.config_class).model_fields:
            assert f"`{name}`" in doc, f"{spec.provider_type}: {name}"


def test_0_2_12_old_vector_io_names_are_the_same_providers(tmp_path):
    from stackray.api.vector_io import Chunk, VectorDB

    faiss_store = tmp_path / "faiss_store.db"
    config = parse_config(
        {
            "version": "2",
            "image_name": "old-names",
            "apis": ["vector_io"],
            "providers": {
                "vector_io": [
                    {
                        "provider_id": "meta-reference",
                        "provider_type": "inline::meta-reference",
                        "config": {"kvstore": {"type": "sqlite", "db_path": str(faiss_store)}},
                    },
                    {
                        "provider_id": "sqlite-vec",
                        "provider_type": "inline::sqlite_vec",
                        "config": {"db_path": str(tmp_path / "sqlite_vec.db")},
                    },
                ]
            },
            "storage": {"data_dir": str(tmp_path / "data")},
        }
    )
    old, older = config.providers_of(Api.vector_io)
    assert (
        spec_for(old, Api.vector_io).impl
        == spec_for(Provider(provider_id="f", provider_type="inline::faiss"), Api.vector_io).impl
    )
    assert spec_for(older, Api.vector_io).config_class.endswith(":SQLiteVecVectorIOConfig")
    for provider, path in ((old, faiss_store), (older, tmp_path / "sqlite_vec.db")):
        impl = asyncio.run(instantiate_provider(Api.vector_io, provider, config))
        vdb = VectorDB(
            identifier="v",
            provider_resource_id="v",
            provider_id=provider.provider_id,
            embedding_model="m",
            embedding_dimension=2,
        )
        chunk = Chunk(
            content="hello", metadata={"document_id": "d", "chunk_id": "c"}, embedding=[1.0, 0.0]
        )
        asyncio.run(impl.register_vector_db(vdb))
        asyncio.run(impl.insert_chunks(vdb, [chunk]))
        hits = asyncio.run(impl.query_vector(vdb, [0.0, 1.0], 1, -1.0, None))
        assert [h.chunk.content for h in hits] == ["hello"]
        assert path.exists()
