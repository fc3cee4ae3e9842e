"""The inference router and resource registry over both store backends: two routers on
one store behave as two replicas of the inference deployment."""

from __future__ import annotations

import asyncio

import pytest

from stackray.api.errors import BadRequestError, ConflictError, NotFoundError
from stackray.api.inference import ChatCompletionRequest
from stackray.api.models import RegisterModelRequest
from stackray.runtime.config import parse_config
from stackray.runtime.routers.inference import build_router as build_inference_router


def stack_config(tmp_path, store: dict | None) -> dict:
    config = {
        "version": 2,
        "image_name": "router",
        "apis": ["inference"],
        "providers": {
            "inference": [
                {"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"},
                {
                    "provider_id": "echo2",
                    "provider_type": "remote::echo",
                    "module": "stackray_echo",
                    "config": {"prefix": "2: "},
                },
            ]
        },
        "models": [{"model_id": "m", "provider_id": "echo", "provider_model_id": "org/m"}],
        "storage": {"data_dir": str(tmp_path)},
    }
    if store is not None:
        config["metadata_store"] = store
        config["inference_store"] = (
            dict(store, table_name="inference_kv") if store["type"] == "postgres" else store
        )
    return config


@pytest.fixture(params=["sqlite", "postgres"])
def config(request, tmp_path):
    if request.param == "sqlite":
        return parse_config(stack_config(tmp_path, None))
    pg = request.getfixturevalue("postgres_config")
    table = f"registry_{abs(hash(request.node.name)) % 10**8}"
    return parse_config(
        stack_config(tmp_path, pg.model_copy(update={"table_name": table}).model_dump())
    )


def chat(model: str) -> ChatCompletionRequest:
    return ChatCompletionRequest(model_id=model, messages=[{"role": "user", "content": "hi"}])


def test_register_on_one_replica_visible_on_other(config):
    async def main():
        a = await build_inference_router(config, {})
        b = await build_inference_router(config, {})
        await a.register_model(RegisterModelRequest(model_id="new", provider_id="echo2"))
        assert b.get_model("new").provider_id == "echo2"
        r = await b.chat_completion(chat("new"))
        assert r.completion_message.content == "2: hi"
        await b.unregister_model("new")
        with pytest.raises(NotFoundError):
            a.get_model("new")

    asyncio.run(main())


def test_lookup_by_provider_model_id(config):
    async def main():
        router = await build_inference_router(config, {})
        assert router.get_model("org/m").identifier == "m"

    asyncio.run(main())


def test_register_is_idempotent_and_conflicts_are_409(config):
    async def main():
        router = await build_inference_router(config, {})
        same = await router.register_model(
            RegisterModelRequest(model_id="m", provider_id="echo", provider_model_id="org/m")
        )
        assert same.identifier == "m"
        with pytest.raises(ConflictError, match="already registered"):
            await router.register_model(RegisterModelRequest(model_id="m", provider_id="echo2"))

    asyncio.run(main())


def test_provider_required_when_several(config):
    async def main():
        router = await build_inference_router(config, {})
        with pytest.raises(BadRequestError) as err:
            await router.register_model(RegisterModelRequest(model_id="x"))
        assert err.value.field == "provider_id"

    asyncio.run(main())


def test_registry_survives_restart(config):
    async def main():
        router = await build_inference_router(config, {})
        await router.register_model(RegisterModelRequest(model_id="kept", provider_id="echo"))
        router.registry.store.close()
        again = await build_inference_router(config, {})
        assert again.get_model("kept").provider_id == "echo"

    asyncio.run(main())


def test_concurrent_registration_from_many_routers(config):
    async def main():
        routers = [await build_inference_router(config, {}) for _ in range(4)]
        results = await asyncio.gather(
            *(
                r.register_model(RegisterModelRequest(model_id="race", provider_id="echo"))
                for r in routers
            )
        )
        assert {m.identifier for m in results} == {"race"}
        assert len([m for m in routers[0].list_models().data if m.identifier == "race"]) == 1

    asyncio.run(main())
