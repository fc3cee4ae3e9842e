"""Fixtures shared by every test module."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stackray.runtime.storage import PostgresStoreConfig

POSTGRES_TEST_DB = "stackray_test"
POSTGRES_TEST_USER = "stackray"
POSTGRES_TEST_PASSWORD = "stackray-test-password"


@dataclass
class PostgresServerInfo:
    """A running throwaway PostgreSQL server (from the `pgserver` package).

    It listens only on a Unix socket: `host` is the socket's directory. The superuser
    `postgres` connects without a password (`admin_connect`); every other role needs one.
    """

    server: Any  # pgserver.PostgresServer
    host: str
    port: int
    pgdata: Path

    def admin_connect(self, dbname: str = "postgres") -> Any:
        """An autocommit psycopg connection as the superuser."""
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname=dbname, autocommit=True
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServerInfo]:
    """Start a PostgreSQL 16 server (with pgvector available) for the test session.

    pgserver runs initdb and pg_ctl itself; as root it runs them as a system user
    `pgserver`, which it creates with useradd if missing. The data directory is deleted
    when the server stops.
    """
    import pgserver  # a test dependency (pyproject [test]); PostgreSQL tests never skip

    base = Path(tempfile.mkdtemp(prefix="stackray-pg-"))
    pgdata = base / "data"
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        postmaster = server.get_postmaster_info()
        yield PostgresServerInfo(
            server=server,
            host=str(postmaster.socket_dir),
            port=int(postmaster.port),
            pgdata=pgdata,
        )
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_config(postgres_server: PostgresServerInfo) -> PostgresStoreConfig:
    """A `PostgresStoreConfig` for database `stackray_test` on the session's server.

    The database is owned by role `stackray`, which logs in with a password (the server
    requires passwords from every role but the superuser). The `vector` extension is
    installed in it. Tests that need a table of their own copy the config with another
    `table_name`.
    """
    import psycopg

    with postgres_server.admin_connect() as conn:
        conn.execute(f"CREATE ROLE {POSTGRES_TEST_USER} LOGIN PASSWORD '{POSTGRES_TEST_PASSWORD}'")
        conn.execute(f"CREATE DATABASE {POSTGRES_TEST_DB} OWNER {POSTGRES_TEST_USER}")
    with postgres_server.admin_connect(POSTGRES_TEST_DB) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
        if available:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")

    # initdb trusts every local connection; require passwords from everyone but postgres.
    (postgres_server.pgdata / "pg_hba.conf").write_text(
        "local all postgres trust\n"
        "local all all scram-sha-256\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        "host all all ::1/128 scram-sha-256\n"
    )
    with postgres_server.admin_connect() as conn:
        conn.execute("SELECT pg_reload_conf()")
    # The reload is asynchronous: wait until a password-less login is refused.
    deadline = time.monotonic() + 10
    while True:
        try:
            psycopg.connect(
                host=postgres_server.host,
                port=postgres_server.port,
                user=POSTGRES_TEST_USER,
                dbname=POSTGRES_TEST_DB,
            ).close()
        except psycopg.OperationalError:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("pg_hba.conf reload did not take effect")
        time.sleep(0.05)

    return PostgresStoreConfig(
        host=postgres_server.host,
        port=postgres_server.port,
        db=POSTGRES_TEST_DB,
        user=POSTGRES_TEST_USER,
        password=POSTGRES_TEST_PASSWORD,
    )


# ---- GPU tests ----------------------------------------------------------------------------


def _missing(needs_vllm: bool) -> str | None:
    """None when this machine has what a `gpu` test needs, else what it lacks: a CUDA GPU,
    and vllm for tests also marked `vllm`."""
    import importlib.util

    try:
        import torch

        gpu = torch.cuda.is_available()
    except Exception:
        gpu = False
    missing = [] if gpu else ["a CUDA GPU"]
    if needs_vllm and importlib.util.find_spec("vllm") is None:
        missing.append("vllm (pip install '.[gpu]')")
    return " and ".join(missing) or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.gpu` tests (and `vllm` ones, which also need vllm) run wherever the
    hardware is present. Elsewhere they are reported as skipped, naming what is missing,
    unless STACKRAY_REQUIRE_GPU=1 (a GPU CI job) makes them run, and fail, there."""
    import os

    if os.environ.get("STACKRAY_REQUIRE_GPU") == "1":
        return
    for item in items:
        if item.get_closest_marker("gpu") is None:
            continue
        missing = _missing(needs_vllm=item.get_closest_marker("vllm") is not None)
        if missing is not None:
            item.add_marker(
                pytest.mark.skip(reason=f"needs {missing}; run on a GPU machine: pytest -m gpu")
            )
