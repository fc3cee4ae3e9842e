"""The calling convention: `ApiClient` over a transport, plain and coroutine methods
awaited alike, public methods only, and the stream batcher `coalesce`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from stackray.runtime.calls import coalesce, local_client
from stackray.runtime.request_context import (
    RequestContext,
    current_provider_data,
    use_context,
)


class Target:
    def plain(self, x: int) -> int:
        return x + 1

    async def coro(self, x: int) -> int:
        return x * 2

    async def words_stream(self, n: int) -> AsyncIterator[str]:
        for i in range(n):
            yield f"w{i}"

    async def context_stream(self) -> AsyncIterator[Any]:
        yield current_provider_data()

    def _private(self) -> None:
        raise AssertionError("never callable across a transport")


def test_plain_and_coroutine_methods_are_awaited_alike():
    client = local_client(Target(), "target")

    async def main() -> tuple[int, int, list[str]]:
        return (
            await client.plain(1),
            await client.coro(4),
            [w async for w in client.words_stream(3)],
        )

    assert asyncio.run(main()) == (2, 8, ["w0", "w1", "w2"])


def test_private_methods_are_not_reachable():
    client = local_client(Target(), "target")
    with pytest.raises(AttributeError):
        client._private  # noqa: B018
    from stackray.runtime.calls import call_in_context

    with pytest.raises(AttributeError, match="not a public method"):
        asyncio.run(call_in_context(Target(), None, "_private"))


def test_the_request_context_travels_with_the_call():
    client = local_client(Target(), "target")
    ctx = RequestContext(provider_data={"k": "v"})

    async def main() -> Any:
        with use_context(ctx):
            return [c async for c in client.context_stream()]

    assert asyncio.run(main()) == [{"k": "v"}]


async def _timed(items: list[tuple[float, Any]]) -> AsyncIterator[Any]:
    for delay, item in items:
        await asyncio.sleep(delay)
        if isinstance(item, Exception):
            raise item
        yield item


def test_coalesce_sends_the_first_item_at_once_then_batches():
    async def main() -> list[tuple[float, list[Any]]]:
        start = time.perf_counter()
        out = []
        # a, then a burst b..e, then f after a pause longer than the interval
        stream = _timed([(0, "a"), (0, "b"), (0, "c"), (0, "d"), (0, "e"), (0.1, "f")])
        async for batch in coalesce(stream, interval_s=0.02):
            out.append((time.perf_counter() - start, batch))
        return out

    out = asyncio.run(main())
    assert [b for _, b in out] == [["a"], ["b", "c", "d", "e"], ["f"]]
    assert out[0][0] < 0.05  # the first chunk does not wait for the interval


def test_coalesce_caps_a_batch():
    async def main() -> list[list[int]]:
        return [b async for b in coalesce(_timed([(0, i) for i in range(10)]), 1.0, 4)]

    assert asyncio.run(main()) == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]


def test_coalesce_raises_after_the_items_before_the_error():
    async def main() -> list[list[Any]]:
        got: list[list[Any]] = []
        with pytest.raises(ValueError, match="boom"):
            async for batch in coalesce(_timed([(0, 1), (0, 2), (0, ValueError("boom"))])):
                got.append(batch)
        return got

    assert sum(asyncio.run(main()), []) == [1, 2]
