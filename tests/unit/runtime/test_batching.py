import asyncio

import pytest

from stackray.runtime.batching import MicroBatcher


def test_concurrent_submissions_share_a_batch():
    calls: list[list[int]] = []

    async def double(items: list[int]) -> list[int]:
        calls.append(items)
        return [i * 2 for i in items]

    async def main():
        batcher = MicroBatcher(double, max_batch_size=8, max_wait_s=0.05)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await batcher.close()
        return results

    assert asyncio.run(main()) == [i * 2 for i in range(10)]
    assert [len(c) for c in calls] == [8, 2]


def test_error_fails_only_that_batch():
    async def flaky(items: list[int]) -> list[int]:
        if 0 in items:
            raise ValueError("bad batch")
        return items

    async def main():
        batcher = MicroBatcher(flaky, max_batch_size=4, max_wait_s=0.0)
        with pytest.raises(ValueError, match="bad batch"):
            await batcher.submit(0)
        assert await batcher.submit(5) == 5
        await batcher.close()

    asyncio.run(main())


def test_wrong_result_count_is_an_error():
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    async def main():
        batcher = MicroBatcher(short, max_batch_size=4, max_wait_s=0.0)
        with pytest.raises(RuntimeError, match="returned 0 results for 1 items"):
            await batcher.submit(1)

    asyncio.run(main())
