"""Reusing MCP sessions between calls.

Opening an MCP session costs several HTTP round trips (connect, ``initialize``, the
``initialized`` notification, and on close a ``DELETE``); a call over an open session is
one. `SessionPool` keeps a session open per (endpoint, transport, request headers) for a
while after its last use, so calls from the same user to the same server share it, and
calls with other credentials never do.

The transports of the `mcp` package run in anyio task groups that must be entered and left
by one task, so each pooled session is owned by a task of its own that opens it, holds it
until it has been idle for `idle_s` (or is dropped), and closes it. Callers use the open
`ClientSession` from their own tasks; requests are matched to answers by id, so several
calls may share one session at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from mcp import ClientSession

logger = logging.getLogger("stackray.providers.mcp")

T = TypeVar("T")
SessionKey = tuple[str, str, tuple[tuple[str, str], ...]]
Opener = Callable[[], AbstractAsyncContextManager["ClientSession"]]


class SessionGone(Exception):
    """The server forgot the session (it restarted): the call was not run."""


class SessionOpenError(Exception):
    """Opening a session failed with `error`; `statuses` are the HTTP error statuses seen."""

    def __init__(self, error: BaseException | None, statuses: list[int]) -> None:
        super().__init__(str(error))
        self.error = error
        self.statuses = statuses


class PooledSession:
    """One open session and the task that owns it."""

    def __init__(self, key: SessionKey) -> None:
        self.key = key
        self.statuses: list[int] = []
        """HTTP error statuses seen by this session's client (to explain failures)."""
        self.session: ClientSession | None = None
        self.error: BaseException | None = None
        self.broken = asyncio.Event()
        """Set when the server answered a message of the open session with 404/410 (it
        no longer knows the session): calls waiting for answers over it get none."""
        self.ready = asyncio.Event()
        self.stop = asyncio.Event()
        self.last_used = time.monotonic()
        self.in_use = 0
        self.calls = 0
        self.task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.session is not None and not self.stop.is_set() and not self.broken.is_set()

    def saw_status(self, status: int) -> None:
        """Called by the session's HTTP client for every error answer."""
        self.statuses.append(status)
        if status in (404, 410) and self.ready.is_set():
            self.broken.set()

    async def run(self, call: Awaitable[T]) -> T:
        """Await `call` over this session, or raise `SessionGone` as soon as the session
        is found broken (its answer would never come)."""
        task = asyncio.ensure_future(call)
        broken = asyncio.ensure_future(self.broken.wait())
        try:
            await asyncio.wait({task, broken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            broken.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if task.cancelled():
            raise SessionGone("the MCP server no longer knows this session")
        return task.result()

    async def own(self, opener: Opener, idle_s: float) -> None:
        try:
            async with opener() as session:
                self.session = session
                self.ready.set()
                while not self.stop.is_set():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self.stop.wait(), timeout=max(idle_s / 4, 0.05))
                    if self.in_use == 0 and time.monotonic() - self.last_used >= idle_s:
                        break
        except BaseException as exc:  # reported to the callers waiting for it
            self.error = exc
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.session = None
            self.stop.set()
            self.ready.set()


class SessionPool:
    """Open MCP sessions by key, one pool per event loop (a Serve replica has one)."""

    def __init__(self, idle_s: float, max_sessions: int) -> None:
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self._pools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[SessionKey, PooledSession]
        ] = weakref.WeakKeyDictionary()

    def _pool(self) -> dict[SessionKey, PooledSession]:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = {}
        return pool

    def _evict(self, pool: dict[SessionKey, PooledSession]) -> None:
        for key, entry in list(pool.items()):
            if not entry.alive and entry.ready.is_set():
                del pool[key]
        idle = sorted((e for e in pool.values() if e.in_use == 0), key=lambda e: e.last_used)
        while len(pool) >= self.max_sessions and idle:
            entry = idle.pop(0)
            entry.stop.set()
            pool.pop(entry.key, None)

    @contextlib.asynccontextmanager
    async def session(
        self, key: SessionKey, opener: Callable[[PooledSession], Opener]
    ) -> AsyncIterator[PooledSession]:
        """A pooled session for `key`, opened with ``opener(entry)()`` when none is open
        (the opener reports HTTP error answers to `entry.saw_status`). Raises
        `SessionOpenError` when opening failed."""
        pool = self._pool()
        entry = pool.get(key)
        if entry is None or (entry.ready.is_set() and not entry.alive):
            self._evict(pool)
            entry = PooledSession(key)
            pool[key] = entry
            # The owning task outlives this request: it starts in an empty context, so it
            # keeps nothing of the request (its provider data) beyond the headers in `key`.
            loop = asyncio.get_running_loop()
            entry.task = contextvars.Context().run(
                loop.create_task, entry.own(opener(entry), self.idle_s)
            )
        entry.in_use += 1
        try:
            try:
                await entry.ready.wait()
            except BaseException:
                # Given up on (timed out): a session still opening for nobody else is dropped.
                if not entry.ready.is_set() and entry.in_use == 1 and entry.task is not None:
                    entry.task.cancel()
                    if pool.get(key) is entry:
                        del pool[key]
                raise
            if entry.session is None:
                if pool.get(key) is entry:
                    del pool[key]
                raise SessionOpenError(entry.error, entry.statuses)
            entry.calls += 1
            yield entry
        finally:
            entry.in_use -= 1
            entry.last_used = time.monotonic()

    def drop(self, entry: PooledSession) -> None:
        """Close `entry` (after a failure that may have broken it)."""
        entry.stop.set()
        pool = self._pools.get(asyncio.get_running_loop())
        if pool is not None and pool.get(entry.key) is entry:
            del pool[entry.key]

    async def close(self) -> None:
        """Close the sessions of the running event loop."""
        pool = self._pools.pop(asyncio.get_running_loop(), {})
        tasks: list[asyncio.Task[Any]] = []
        for entry in pool.values():
            entry.stop.set()
            if entry.task is not None:
                tasks.append(entry.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
