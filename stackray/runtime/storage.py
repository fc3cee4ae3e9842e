"""The stack's store: registered resources and stored objects, shared by every replica.

Every Ray Serve replica opens the configured store itself, in its own process (and, with
PostgreSQL, possibly on its own machine). Nothing read from the store is cached here: each
call goes to the database, so a resource written through one replica is visible from every
other replica as soon as the call that wrote it returns.

Two kinds of store sit on one configured backend (SQLite file or PostgreSQL database):

- `KVStore`: string keys and string (JSON) values, namespaced by the caller with key
  prefixes, with optional expiry. Opened with `open_kvstore(config)`.
- `DocumentStore`: a table of JSON documents with a few indexed columns, for listings with
  filters, ordering and cursor pagination (stored chat completions, agent sessions ...).

Both are synchronous: calls are short, and callers run them inline.

A store that cannot be opened or used (unwritable path, PostgreSQL unreachable, bad
credentials) raises `ServiceUnavailableError` with a message naming the backend and its
location; the driver's own exception is kept as `__cause__` for the logs.

SQLite is for one machine: several processes may write at once (WAL mode, busy timeout),
but the file must be on a local file system. Use PostgreSQL when replicas span machines.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, field_validator

from stackray.api.errors import BadRequestError, ServiceUnavailableError

__all__ = [
    "DocumentStore",
    "KVStore",
    "PostgresKVStore",
    "PostgresStoreConfig",
    "SqliteKVStore",
    "SqliteStoreConfig",
    "StoreConfig",
    "open_kvstore",
    "parse_store_config",
    "validate_identifier",
]

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite call waits for another process's write lock before giving up."""

POSTGRES_CONNECT_TIMEOUT_S = 10
"""How long connecting to PostgreSQL may take before the store is reported unavailable."""

SQLITE_KV_TABLE = "kvstore"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def validate_identifier(name: str, what: str = "table name") -> str:
    """Return `name` if it is a plain SQL identifier (letters, digits, underscores; at most
    63 characters, not starting with a digit), else raise ValueError.

    Only names that pass this check are ever written into SQL text; values always travel
    as query parameters.
    """
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"invalid {what} {name!r}: use letters, digits and underscores, not starting "
            "with a digit, at most 63 characters"
        )
    return name


def _quote(name: str) -> str:
    return f'"{validate_identifier(name, "identifier")}"'


# --------------------------------------------------------------------------------------
# Configuration (the `metadata_store` / `inference_store` / `kvstore` blocks of run.yaml)
# --------------------------------------------------------------------------------------


class _StoreConfigBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str | None = Field(
        default=None,
        description="If set, every key of a key-value store opened on this config is "
        "prefixed with '<namespace>:', and every document table's name with '<namespace>_' "
        "(other characters than letters, digits and underscores become underscores), so "
        "stacks sharing one database keep apart.",
    )


class SqliteStoreConfig(_StoreConfigBase):
    """A store in a SQLite file, for one machine."""

    type: Literal["sqlite"] = Field(default="sqlite", description="The backend: SQLite.")
    db_path: str = Field(
        description="Path of the SQLite database file. `~` is expanded; missing parent "
        "directories are created. The file must be on a local file system."
    )

    @field_validator("db_path")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("db_path must not be empty")
        return value

    def resolved_path(self) -> Path:
        """The database file, with `~` expanded."""
        return Path(self.db_path).expanduser()

    def location(self) -> str:
        return str(self.resolved_path())


class PostgresStoreConfig(_StoreConfigBase):
    """A store in a PostgreSQL database, shared by replicas on any machine."""

    type: Literal["postgres"] = Field(default="postgres", description="The backend: PostgreSQL.")
    host: str = Field(
        default="localhost",
        description="Server host name or address, or the directory of its Unix socket.",
    )
    port: int = Field(default=5432, description="Server port.")
    db: str = Field(default="llamastack", description="Database name.")
    user: str = Field(description="User name to connect as.")
    password: str | None = Field(
        default=None,
        repr=False,
        description="Password; if unset, libpq's defaults apply (PGPASSWORD, ~/.pgpass).",
    )
    table_name: str = Field(
        default="llamastack_kvstore",
        description="Table that holds the key-value store; created if missing.",
    )

    @field_validator("table_name")
    @classmethod
    def _valid_table_name(cls, value: str) -> str:
        return validate_identifier(value)

    def location(self) -> str:
        return f"{self.host}:{self.port}/{self.db}"


_UNSUPPORTED_STORES = {
    "redis": "Redis",
    "mongodb": "MongoDB",
}


def _refuse_unsupported_store(value: Any) -> Any:
    """Llama Stack 0.2.12 also names Redis and MongoDB key-value stores; every store here
    (the registry, stored completions, agents, vector store tables) is a set of SQL tables,
    so those are refused at start, naming the type, rather than parsed and ignored."""
    if isinstance(value, Mapping) and value.get("type") in _UNSUPPORTED_STORES:
        name = _UNSUPPORTED_STORES[value["type"]]
        raise ValueError(
            f"type {value['type']!r}: {name} stores are not supported here (the stores are SQL "
            "tables); use type 'sqlite' (db_path) or 'postgres' (host, port, db, user, "
            "password, table_name)"
        )
    return value


StoreConfig = Annotated[
    Annotated[SqliteStoreConfig | PostgresStoreConfig, Field(discriminator="type")],
    BeforeValidator(_refuse_unsupported_store),
]

_STORE_CONFIG = TypeAdapter(StoreConfig)


def parse_store_config(
    value: SqliteStoreConfig | PostgresStoreConfig | Mapping[str, Any],
) -> SqliteStoreConfig | PostgresStoreConfig:
    """Validate a store config given as a model or as a mapping (run.yaml)."""
    if isinstance(value, SqliteStoreConfig | PostgresStoreConfig):
        return value
    return _STORE_CONFIG.validate_python(value)


# --------------------------------------------------------------------------------------
# Backends: connections, error mapping and a common way to run statements
# --------------------------------------------------------------------------------------

T = TypeVar("T")


def _clean_reason(exc: BaseException) -> str:
    """One line from a driver error, without the traceback."""
    text = " ".join(str(exc).split())
    if not text:
        text = type(exc).__name__
    return text[:500]


class _Executor:
    """Runs statements written with `?` placeholders on one cursor."""

    def __init__(self, cursor: Any, placeholder: str) -> None:
        self._cursor = cursor
        self._placeholder = placeholder

    def _sql(self, sql: str) -> str:
        # Our SQL holds no literals: every `?` is a placeholder, and there is no `%`.
        return sql if self._placeholder == "?" else sql.replace("?", self._placeholder)

    def fetchall(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        self._cursor.execute(self._sql(sql), tuple(params))
        return list(self._cursor.fetchall())

    def execute(self, sql: str, params: tuple | list = ()) -> int:
        self._cursor.execute(self._sql(sql), tuple(params))
        return self._cursor.rowcount


class _Backend:
    """One configured database, as used by the stores."""

    kind: str
    location: str
    types: dict[type, str]

    def run(self, fn: Callable[[_Executor], T], *, transaction: bool = False) -> T:
        raise NotImplementedError

    def fetchall(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        return self.run(lambda ex: ex.fetchall(sql, params))

    def execute(self, sql: str, params: tuple | list = ()) -> int:
        return self.run(lambda ex: ex.execute(sql, params))

    def column_names(self, ex: _Executor, table: str) -> set[str]:
        raise NotImplementedError

    def lock_schema(self, ex: _Executor, table: str) -> None:
        """Serialize schema changes to `table` across processes (inside a transaction)."""

    def close(self) -> None:
        raise NotImplementedError

    def unavailable(self, reason: str) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            f"{self.kind} store at {self.location} is unavailable: {reason}"
        )


class _SqliteConnection(sqlite3.Connection):
    """A sqlite3 connection that can be weakly referenced."""


class _SqliteBackend(_Backend):
    """Per-thread connections to one SQLite file (WAL mode, busy timeout)."""

    kind = "SQLite"
    types = {str: "TEXT", int: "INTEGER", float: "REAL", bool: "INTEGER"}

    def __init__(self, config: SqliteStoreConfig) -> None:
        self.path = config.resolved_path()
        self.location = str(self.path)
        self._local = threading.local()
        self._connections: weakref.WeakSet[_SqliteConnection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False
        self._connection()  # fail now, not at the first request

    def _connect(self) -> _SqliteConnection:
        try:
            is_dir = self.path.is_dir()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise self.unavailable(f"cannot access the file: {reason}") from exc
        if is_dir:
            raise self.unavailable("the path is a directory")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise self.unavailable(f"cannot create directory {self.path.parent}: {reason}") from exc
        try:
            conn = sqlite3.connect(
                str(self.path),
                timeout=SQLITE_BUSY_TIMEOUT_S,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,  # so that close() may close every thread's
                factory=_SqliteConnection,
            )
        except sqlite3.Error as exc:
            raise self.unavailable(_clean_reason(exc)) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            conn.close()
            raise self.unavailable(_clean_reason(exc)) from exc
        assert isinstance(conn, _SqliteConnection)
        return conn

    def _connection(self) -> _SqliteConnection:
        if self._closed:
            raise self.unavailable("the store is closed")
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():  # a forked child opens its own
            conn = self._connect()
            local.conn, local.pid = conn, os.getpid()
            with self._lock:
                self._connections.add(conn)
        return conn

    def run(self, fn: Callable[[_Executor], T], *, transaction: bool = False) -> T:
        conn = self._connection()
        cursor = conn.cursor()
        try:
            if not transaction:
                return fn(_Executor(cursor, "?"))
            cursor.execute("BEGIN IMMEDIATE")  # take the write lock now (busy timeout)
            try:
                result = fn(_Executor(cursor, "?"))
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise
            cursor.execute("COMMIT")
            return result
        except sqlite3.OperationalError as exc:
            raise self.unavailable(_clean_reason(exc)) from exc
        except sqlite3.DatabaseError as exc:
            if type(exc) is sqlite3.DatabaseError:  # e.g. "file is not a database"
                raise self.unavailable(_clean_reason(exc)) from exc
            raise
        finally:
            cursor.close()

    def column_names(self, ex: _Executor, table: str) -> set[str]:
        return {row[1] for row in ex.fetchall(f"PRAGMA table_info({_quote(table)})")}

    def close(self) -> None:
        self._closed = True
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error:
                pass


# Connections inherited by a forked child. Closing one there would end the parent's
# session, so the child keeps them referenced and opens its own.
_FORK_ORPHANS: list[Any] = []


class _PostgresBackend(_Backend):
    """One psycopg connection per process, guarded by a lock; reconnects once when the
    connection turns out to be broken."""

    kind = "PostgreSQL"
    types = {str: "TEXT", int: "BIGINT", float: "DOUBLE PRECISION", bool: "BOOLEAN"}

    def __init__(self, config: PostgresStoreConfig) -> None:
        self.config = config
        self.location = config.location()
        self._lock = threading.RLock()
        self._conn: Any = None
        self._pid = os.getpid()
        self._closed = False
        with self._lock:
            self._connection()  # fail now, not at the first request

    def _connect(self) -> Any:
        import psycopg

        cfg = self.config
        try:
            return psycopg.connect(
                host=cfg.host,
                port=cfg.port,
                dbname=cfg.db,
                user=cfg.user,
                password=cfg.password,
                autocommit=True,
                connect_timeout=POSTGRES_CONNECT_TIMEOUT_S,
                application_name="stackray",
            )
        except psycopg.Error as exc:
            raise self.unavailable(_clean_reason(exc)) from exc

    def _connection(self) -> Any:
        if self._closed:
            raise self.unavailable("the store is closed")
        if self._pid != os.getpid():
            if self._conn is not None:
                _FORK_ORPHANS.append(self._conn)
            self._conn, self._pid = None, os.getpid()
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def run(self, fn: Callable[[_Executor], T], *, transaction: bool = False) -> T:
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    with conn.cursor() as cursor:
                        if not transaction:
                            return fn(_Executor(cursor, "%s"))
                        with conn.transaction():
                            return fn(_Executor(cursor, "%s"))
                except psycopg.OperationalError as exc:
                    if conn.closed or conn.broken:
                        self._conn = None
                        try:
                            conn.close()
                        except psycopg.Error:
                            pass
                        if attempt == 1:
                            continue  # the server may have restarted: try once more
                    raise self.unavailable(_clean_reason(exc)) from exc
                except (
                    psycopg.errors.InsufficientPrivilege,
                    psycopg.errors.ReadOnlySqlTransaction,
                ) as exc:
                    # The database works but refuses us: a deployment problem, not a bug.
                    raise self.unavailable(_clean_reason(exc)) from exc
        raise AssertionError("unreachable")

    def column_names(self, ex: _Executor, table: str) -> set[str]:
        rows = ex.fetchall(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        )
        return {row[0] for row in rows}

    def lock_schema(self, ex: _Executor, table: str) -> None:
        # Concurrent CREATE TABLE IF NOT EXISTS can fail in PostgreSQL; serialize it.
        ex.fetchall("SELECT pg_advisory_xact_lock(hashtext(?))", (f"stackray.schema.{table}",))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                try:
                    conn.close()
                except Exception:
                    pass


def _open_backend(config: SqliteStoreConfig | PostgresStoreConfig) -> _Backend:
    if isinstance(config, SqliteStoreConfig):
        return _SqliteBackend(config)
    return _PostgresBackend(config)


# --------------------------------------------------------------------------------------
# Key-value store
# --------------------------------------------------------------------------------------


@runtime_checkable
class KVStore(Protocol):
    """String keys, string (JSON) values. Callers namespace keys with prefixes
    (e.g. "models:"). Keys past their expiry read as absent."""

    def get(self, key: str) -> str | None:
        """The value stored under `key`, or None."""
        ...

    def set(self, key: str, value: str, expires_at: datetime | None = None) -> None:
        """Store `value` under `key`, replacing any value (and expiry) it had."""
        ...

    def set_if_absent(self, key: str, value: str, expires_at: datetime | None = None) -> bool:
        """Store `value` only if `key` is absent; True if stored. Atomic across replicas."""
        ...

    def increment(self, key: str, expires_at: datetime | None = None) -> int:
        """Add one to the counter at `key` (starting at 1, expiring at `expires_at`) and
        return it. Atomic across replicas."""
        ...

    def delete(self, key: str) -> bool:
        """Remove `key`; True if it was present."""
        ...

    def list(self, prefix: str = "") -> list[tuple[str, str]]:
        """Every (key, value) whose key starts with `prefix`, sorted by key."""
        ...

    def close(self) -> None:
        """Release connections. The store cannot be used afterwards."""
        ...


def _epoch(expires_at: datetime | None) -> float | None:
    """Seconds since the epoch. A naive datetime is taken as local time, like
    `datetime.timestamp()` does."""
    return None if expires_at is None else expires_at.timestamp()


class _KVStoreBase:
    _backend: _Backend

    def __init__(self, namespace: str | None) -> None:
        self._prefix = f"{namespace}:" if namespace else ""

    # Each backend writes its own SQL for these.
    def _get(self, key: str) -> str | None:
        raise NotImplementedError

    def _set(self, key: str, value: str, expires_at: datetime | None, replace: bool) -> bool:
        raise NotImplementedError

    def _delete(self, key: str) -> bool:
        raise NotImplementedError

    def _list(self, prefix: str) -> list[tuple[str, str]]:
        raise NotImplementedError

    @staticmethod
    def _check(key: str, value: str | None = None) -> None:
        if not isinstance(key, str):
            raise TypeError(f"store keys are strings, not {type(key).__name__}")
        if value is not None and not isinstance(value, str):
            raise TypeError(f"store values are strings (JSON), not {type(value).__name__}")

    def get(self, key: str) -> str | None:
        self._check(key)
        return self._get(self._prefix + key)

    def set(self, key: str, value: str, expires_at: datetime | None = None) -> None:
        self._check(key, value)
        if value is None:
            raise TypeError("store values are strings (JSON), not None")
        self._set(self._prefix + key, value, expires_at, True)

    def set_if_absent(self, key: str, value: str, expires_at: datetime | None = None) -> bool:
        """Store `value` only if `key` is absent (or expired), atomically across every
        replica. True if it was stored; use it to register a resource exactly once."""
        self._check(key, value)
        if value is None:
            raise TypeError("store values are strings (JSON), not None")
        return self._set(self._prefix + key, value, expires_at, False)

    def delete(self, key: str) -> bool:
        self._check(key)
        return self._delete(self._prefix + key)

    def list(self, prefix: str = "") -> list[tuple[str, str]]:
        self._check(prefix)
        n = len(self._prefix)
        return [(key[n:], value) for key, value in self._list(self._prefix + prefix)]

    def increment(self, key: str, expires_at: datetime | None = None) -> int:
        """Add one to the counter at `key` (absent or expired: start at 1, expiring at
        `expires_at`) and return it; atomic across every replica."""
        self._check(key)
        return self._increment(self._prefix + key, expires_at)

    def _increment(self, key: str, expires_at: datetime | None) -> int:
        raise NotImplementedError

    def keys(self, prefix: str = "") -> builtins.list[str]:
        """The keys that start with `prefix`, sorted."""
        return [key for key, _ in self.list(prefix)]

    @property
    def location(self) -> str:
        return f"{self._backend.kind} store at {self._backend.location}"

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> _KVStoreBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._backend.location!r})"


class SqliteKVStore(_KVStoreBase):
    """Key-value store in a SQLite file (table `kvstore`). Expiry is stored as seconds since
    the epoch and checked against this machine's clock."""

    _LIVE = "(expiration IS NULL OR expiration > ?)"

    def __init__(self, config: SqliteStoreConfig) -> None:
        super().__init__(config.namespace)
        self._backend = _SqliteBackend(config)
        table = _quote(SQLITE_KV_TABLE)

        def create(ex: _Executor) -> None:
            ex.execute(
                f"CREATE TABLE IF NOT EXISTS {table} "
                "(key TEXT PRIMARY KEY, value TEXT, expiration REAL)"
            )
            ex.execute(
                f"CREATE INDEX IF NOT EXISTS {_quote(SQLITE_KV_TABLE + '_expiration_idx')} "
                f"ON {table} (expiration)"
            )
            ex.execute(
                f"DELETE FROM {table} WHERE expiration IS NOT NULL AND expiration <= ?",
                (time.time(),),
            )

        try:
            self._backend.run(create, transaction=True)
        except BaseException:
            self._backend.close()
            raise
        self._table = table

    def _get(self, key: str) -> str | None:
        rows = self._backend.fetchall(
            f"SELECT value FROM {self._table} WHERE key = ? AND {self._LIVE}", (key, time.time())
        )
        return rows[0][0] if rows else None

    def _set(self, key: str, value: str, expires_at: datetime | None, replace: bool) -> bool:
        now = time.time()
        sql = (
            f"INSERT INTO {self._table} (key, value, expiration) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
            "expiration = excluded.expiration"
        )
        params: tuple = (key, value, _epoch(expires_at))
        if not replace:
            sql += f" WHERE {self._table}.expiration IS NOT NULL AND {self._table}.expiration <= ?"
            params += (now,)
        return self._backend.execute(sql, params) > 0

    def _increment(self, key: str, expires_at: datetime | None) -> int:
        t = self._table
        expired = f"({t}.expiration IS NOT NULL AND {t}.expiration <= ?)"
        sql = (
            f"INSERT INTO {t} (key, value, expiration) VALUES (?, '1', ?) "
            f"ON CONFLICT (key) DO UPDATE SET "
            f"value = CASE WHEN {expired} THEN '1' "
            f"ELSE CAST(CAST({t}.value AS INTEGER) + 1 AS TEXT) END, "
            f"expiration = CASE WHEN {expired} THEN excluded.expiration ELSE {t}.expiration END "
            "RETURNING value"
        )
        now = time.time()
        params = (key, _epoch(expires_at), now, now)
        rows = self._backend.run(lambda ex: ex.fetchall(sql, params), transaction=True)
        return int(rows[0][0])

    def _delete(self, key: str) -> bool:
        def delete(ex: _Executor) -> bool:
            live = ex.execute(
                f"DELETE FROM {self._table} WHERE key = ? AND {self._LIVE}", (key, time.time())
            )
            if not live:
                ex.execute(f"DELETE FROM {self._table} WHERE key = ?", (key,))
            return live > 0

        return self._backend.run(delete, transaction=True)

    def _list(self, prefix: str) -> list[tuple[str, str]]:
        rows = self._backend.fetchall(
            f"SELECT key, value FROM {self._table} "
            f"WHERE key >= ? AND substr(key, 1, ?) = ? AND {self._LIVE} ORDER BY key",
            (prefix, len(prefix), prefix, time.time()),
        )
        return [(key, value) for key, value in rows]


class PostgresKVStore(_KVStoreBase):
    """Key-value store in a PostgreSQL table (`table_name`; same layout as Llama Stack's:
    key TEXT PRIMARY KEY, value TEXT, expiration TIMESTAMP in UTC). Expiry is checked
    against the database server's clock."""

    _NOW = "(now() AT TIME ZONE 'UTC')"
    _LIVE = f"(expiration IS NULL OR expiration > {_NOW})"

    def __init__(self, config: PostgresStoreConfig) -> None:
        super().__init__(config.namespace)
        self._backend = _PostgresBackend(config)
        name = config.table_name
        table = _quote(name)

        def create(ex: _Executor) -> None:
            if ex.fetchall("SELECT to_regclass(?)", (table,))[0][0] is None:
                self._backend.lock_schema(ex, name)
                ex.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} "
                    "(key TEXT PRIMARY KEY, value TEXT, expiration TIMESTAMP)"
                )
                ex.execute(
                    f"CREATE INDEX IF NOT EXISTS {_quote(_index_name(name, 'expiration'))} "
                    f"ON {table} (expiration)"
                )
            ex.execute(f"DELETE FROM {table} WHERE expiration <= {self._NOW}")

        try:
            self._backend.run(create, transaction=True)
        except BaseException:
            self._backend.close()
            raise
        self._table = table

    @staticmethod
    def _utc(expires_at: datetime | None) -> datetime | None:
        if expires_at is None:
            return None
        return datetime.fromtimestamp(expires_at.timestamp(), timezone.utc).replace(tzinfo=None)

    def _get(self, key: str) -> str | None:
        rows = self._backend.fetchall(
            f"SELECT value FROM {self._table} WHERE key = ? AND {self._LIVE}", (key,)
        )
        return rows[0][0] if rows else None

    def _set(self, key: str, value: str, expires_at: datetime | None, replace: bool) -> bool:
        sql = (
            f"INSERT INTO {self._table} (key, value, expiration) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, "
            "expiration = EXCLUDED.expiration"
        )
        if not replace:
            sql += (
                f" WHERE {self._table}.expiration IS NOT NULL "
                f"AND {self._table}.expiration <= {self._NOW}"
            )
        return self._backend.execute(sql, (key, value, self._utc(expires_at))) > 0

    def _increment(self, key: str, expires_at: datetime | None) -> int:
        t = self._table
        expired = f"({t}.expiration IS NOT NULL AND {t}.expiration <= {self._NOW})"
        sql = (
            f"INSERT INTO {t} (key, value, expiration) VALUES (?, '1', ?) "
            f"ON CONFLICT (key) DO UPDATE SET "
            f"value = CASE WHEN {expired} THEN '1' "
            f"ELSE CAST(CAST({t}.value AS BIGINT) + 1 AS TEXT) END, "
            f"expiration = CASE WHEN {expired} THEN EXCLUDED.expiration ELSE {t}.expiration END "
            "RETURNING value"
        )
        params = (key, self._utc(expires_at))
        rows = self._backend.run(lambda ex: ex.fetchall(sql, params), transaction=True)
        return int(rows[0][0])

    def _delete(self, key: str) -> bool:
        rows = self._backend.fetchall(
            f"DELETE FROM {self._table} WHERE key = ? RETURNING {self._LIVE}", (key,)
        )
        return any(live for (live,) in rows)

    def _list(self, prefix: str) -> list[tuple[str, str]]:
        rows = self._backend.fetchall(
            f"SELECT key, value FROM {self._table} "
            f'WHERE starts_with(key, ?) AND {self._LIVE} ORDER BY key COLLATE "C"',
            (prefix,),
        )
        return [(key, value) for key, value in rows]


def open_kvstore(
    config: SqliteStoreConfig | PostgresStoreConfig | Mapping[str, Any],
) -> SqliteKVStore | PostgresKVStore:
    """Open the key-value store described by `config` (a model or a run.yaml mapping)."""
    config = parse_store_config(config)
    if isinstance(config, SqliteStoreConfig):
        return SqliteKVStore(config)
    return PostgresKVStore(config)


# --------------------------------------------------------------------------------------
# Document store
# --------------------------------------------------------------------------------------


def _index_name(table: str, column: str) -> str:
    name = f"{table}_{column}_idx"
    if len(name) > 63:
        digest = hashlib.sha1(f"{table}.{column}".encode()).hexdigest()[:12]
        name = f"{table[:40]}_{digest}_idx"
    return name


_INDEXABLE = (str, int, float, bool)
_RESERVED_COLUMNS = {"id", "doc"}


def _check_value(column: str, kind: type, value: Any) -> Any:
    """A document field's value, checked against its column's type (None allowed)."""
    if value is None:
        return None
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind) and not isinstance(value, bool)
    if not ok:
        raise ValueError(
            f"field {column!r} is indexed as {kind.__name__}, got {type(value).__name__}"
        )
    return float(value) if kind is float else value


def namespaced_table(namespace: str | None, table: str) -> str:
    """The name of document table `table` in a store with `namespace`."""
    if not namespace:
        return table
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', namespace)}_{table}"


class DocumentStore:
    """A table of JSON documents keyed by id, with a few top-level fields copied into
    indexed columns for filtering and ordering.

        store = DocumentStore(config, "chat_completions", {"model": str, "created": int})
        store.put(completion_id, completion_dict)
        page, has_more = store.query({"model": "m"}, order_by="created", desc=True,
                                     after=last_id, limit=20)

    Documents are stored whole (as JSON text); an indexed column holds the document's
    top-level field of that name (NULL when missing). Columns added to `indexed` later are
    added to an existing table and filled from the stored documents.
    """

    def __init__(
        self,
        backend: SqliteStoreConfig | PostgresStoreConfig | Mapping[str, Any],
        table: str,
        indexed: Mapping[str, type] | None = None,
    ) -> None:
        config = parse_store_config(backend)
        validate_identifier(table)
        self.table = validate_identifier(namespaced_table(config.namespace, table))
        self.indexed: dict[str, type] = {}
        for column, kind in (indexed or {}).items():
            validate_identifier(column, "column name")
            if column in _RESERVED_COLUMNS:
                raise ValueError(f"column name {column!r} is reserved")
            if kind not in _INDEXABLE:
                raise ValueError(
                    f"column {column!r}: indexed types are str, int, float and bool, "
                    f"not {getattr(kind, '__name__', kind)!r}"
                )
            self.indexed[column] = kind
        self._backend = _open_backend(config)
        self._t = _quote(self.table)
        try:
            self._backend.run(self._create, transaction=True)
        except BaseException:
            self._backend.close()
            raise

    def _create(self, ex: _Executor) -> None:
        backend, t = self._backend, self._t
        existing = backend.column_names(ex, self.table)
        if existing and all(c in existing for c in self.indexed):
            return
        backend.lock_schema(ex, self.table)
        existing = backend.column_names(ex, self.table)
        if not existing:
            columns = "".join(f", {_quote(c)} {backend.types[k]}" for c, k in self.indexed.items())
            ex.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY, doc TEXT NOT NULL{columns})"
            )
            added = []
        else:
            added = [c for c in self.indexed if c not in existing]
            for column in added:
                ex.execute(
                    f"ALTER TABLE {t} ADD COLUMN {_quote(column)} {backend.types[self.indexed[column]]}"
                )
        for column in self.indexed:
            ex.execute(
                f"CREATE INDEX IF NOT EXISTS {_quote(_index_name(self.table, column))} "
                f"ON {t} ({_quote(column)})"
            )
        if added:  # fill new columns from the documents already stored
            sets = ", ".join(f"{_quote(c)} = ?" for c in added)
            for doc_id, text in ex.fetchall(f"SELECT id, doc FROM {t}"):
                doc = json.loads(text)
                values = [self._column_value(doc, c, strict=False) for c in added]
                ex.execute(f"UPDATE {t} SET {sets} WHERE id = ?", (*values, doc_id))

    def _column_value(self, doc: Mapping[str, Any], column: str, strict: bool = True) -> Any:
        try:
            return _check_value(column, self.indexed[column], doc.get(column))
        except ValueError:
            if strict:
                raise
            return None

    # -- single documents ------------------------------------------------------------

    def put(self, id: str, doc: Mapping[str, Any]) -> None:
        """Store `doc` under `id`, replacing any document stored there."""
        if not isinstance(id, str):
            raise TypeError(f"document ids are strings, not {type(id).__name__}")
        text = json.dumps(doc, separators=(",", ":"))
        values = [self._column_value(doc, c) for c in self.indexed]
        columns = "".join(f", {_quote(c)}" for c in self.indexed)
        marks = ", ?" * len(self.indexed)
        updates = "".join(f", {_quote(c)} = excluded.{_quote(c)}" for c in self.indexed)
        self._backend.execute(
            f"INSERT INTO {self._t} (id, doc{columns}) VALUES (?, ?{marks}) "
            f"ON CONFLICT (id) DO UPDATE SET doc = excluded.doc{updates}",
            (id, text, *values),
        )

    def get(self, id: str) -> dict[str, Any] | None:
        """The document stored under `id`, or None."""
        rows = self._backend.fetchall(f"SELECT doc FROM {self._t} WHERE id = ?", (id,))
        return json.loads(rows[0][0]) if rows else None

    def delete(self, id: str) -> bool:
        """Remove the document stored under `id`; True if there was one."""
        return self._backend.execute(f"DELETE FROM {self._t} WHERE id = ?", (id,)) > 0

    # -- listings --------------------------------------------------------------------

    def _column_kind(self, column: str, what: str) -> type:
        if column == "id":
            return str
        if column not in self.indexed:
            raise ValueError(
                f"{what} {column!r} is not an indexed column of {self.table!r} "
                f"(indexed: {', '.join(['id', *self.indexed])})"
            )
        return self.indexed[column]

    def _where(self, where: Mapping[str, Any] | None) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (where or {}).items():
            kind = self._column_kind(column, "filter")
            col = _quote(column)
            if value is None:
                clauses.append(f"{col} IS NULL")
            elif isinstance(value, list | tuple | set | frozenset):
                values = [_check_value(column, kind, v) for v in value]
                if not values:
                    clauses.append("1 = 0")
                else:
                    clauses.append(f"{col} IN ({', '.join('?' * len(values))})")
                    params.extend(values)
            else:
                clauses.append(f"{col} = ?")
                params.append(_check_value(column, kind, value))
        return clauses, params

    def query(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | None = None,
        desc: bool = True,
        after: str | None = None,
        limit: int | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Documents matching `where`, ordered by `order_by` (ties broken by id), starting
        after the document with id `after`, at most `limit` of them.

        `order_by` is an indexed column or "id"; by default "created" when that column is
        indexed, else "id".

        `where` maps indexed columns (or "id") to a value (equality), None (IS NULL) or a
        list/tuple/set (any of). Documents whose `order_by` value is NULL come first in
        ascending order and last in descending order. Returns (documents, has_more), where
        has_more says whether more documents follow the returned page.

        Raises BadRequestError if `after` names no stored document.
        """
        clauses, params = self._where(where)
        if order_by is None:
            order_by = "created" if "created" in self.indexed else "id"
        self._column_kind(order_by, "order_by")
        col = _quote(order_by)
        cmp = "<" if desc else ">"
        if after is not None:
            rows = self._backend.fetchall(f"SELECT {col} FROM {self._t} WHERE id = ?", (after,))
            if not rows:
                raise BadRequestError(
                    f"cursor {after!r} does not name a stored item", field="after"
                )
            if order_by == "id":
                clauses.append(f"id {cmp} ?")
                params.append(after)
            else:
                anchor = rows[0][0]
                if anchor is None:
                    # NULLs sort lowest: after a NULL, ascending goes on to the rest of
                    # the NULLs then every value; descending only to the rest of the NULLs.
                    tail = f" OR {col} IS NOT NULL" if not desc else ""
                    clauses.append(f"(({col} IS NULL AND id {cmp} ?){tail})")
                    params.append(after)
                else:
                    nulls = f" OR {col} IS NULL" if desc else ""
                    clauses.append(f"({col} {cmp} ? OR ({col} = ? AND id {cmp} ?){nulls})")
                    params.extend([anchor, anchor, after])

        direction = "DESC" if desc else "ASC"
        if order_by == "id":
            order = f"id {direction}"
        else:
            order = f"({col} IS NOT NULL) {direction}, {col} {direction}, id {direction}"
        sql = f"SELECT doc FROM {self._t}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY {order}"
        if limit is not None:
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
                raise ValueError(f"limit must be a non-negative integer, got {limit!r}")
            sql += " LIMIT ?"
            params.append(limit + 1)
        rows = self._backend.fetchall(sql, params)
        has_more = limit is not None and len(rows) > limit
        if has_more:
            rows = rows[:limit]
        return [json.loads(text) for (text,) in rows], has_more

    def count(self, where: Mapping[str, Any] | None = None) -> int:
        """How many documents match `where` (same form as in `query`)."""
        clauses, params = self._where(where)
        sql = f"SELECT COUNT(*) FROM {self._t}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return int(self._backend.fetchall(sql, params)[0][0])

    @property
    def location(self) -> str:
        return f"{self._backend.kind} store at {self._backend.location}, table {self.table}"

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> DocumentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DocumentStore({self._backend.location!r}, table={self.table!r})"
