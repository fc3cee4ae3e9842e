"""The store, on both backends: SQLite files and a real PostgreSQL server (pgserver)."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pydantic
import pytest

from stackray.api.errors import BadRequestError, ServiceUnavailableError
from stackray.runtime.storage import (
    DocumentStore,
    KVStore,
    PostgresKVStore,
    PostgresStoreConfig,
    SqliteKVStore,
    SqliteStoreConfig,
    open_kvstore,
    parse_store_config,
    validate_identifier,
)

BACKENDS = ["sqlite", "postgres"]


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=BACKENDS)
def config(request, tmp_path) -> SqliteStoreConfig | PostgresStoreConfig:
    """A fresh store on each backend: a new SQLite file, or a new PostgreSQL table."""
    if request.param == "sqlite":
        return SqliteStoreConfig(db_path=str(tmp_path / "store" / "kv.db"))
    pg = request.getfixturevalue("postgres_config")
    return pg.model_copy(update={"table_name": _unique("kv")})


@pytest.fixture
def kv(config):
    store = open_kvstore(config)
    yield store
    store.close()


@pytest.fixture
def table() -> str:
    return _unique("docs")


def _spawn():
    return multiprocessing.get_context("spawn")


# -- workers run in other processes (spawned, so that they share nothing with the test) --


def _worker_write(config, worker: int, n: int) -> tuple[int, bool]:
    store = open_kvstore(config)
    try:
        for i in range(n):
            store.set(f"w:{worker}:{i:04d}", json.dumps({"worker": worker, "i": i}))
            store.set("shared", str(worker))
        won = store.set_if_absent("winner", str(worker))
        return worker, won
    finally:
        store.close()


def _worker_roundtrip(config, key: str) -> str | None:
    store = open_kvstore(config)
    try:
        seen = store.get(key)
        store.set(key + ":reply", f"child {os.getpid()}")
        return seen
    finally:
        store.close()


def _worker_docs(config, table: str, worker: int, n: int) -> int:
    store = DocumentStore(config, table, {"model": str, "created": int})
    try:
        for i in range(n):
            store.put(f"{worker}-{i}", {"model": f"m{worker}", "created": i})
        return worker
    finally:
        store.close()


def _worker_open(db_path: str, as_nobody: bool) -> str:
    if as_nobody:
        os.setgid(65534)
        os.setuid(65534)
    try:
        open_kvstore(SqliteStoreConfig(db_path=db_path))
    except ServiceUnavailableError as err:
        return f"ServiceUnavailableError: {err.message}"
    return "opened"


# -- configuration ------------------------------------------------------------------------


def test_config_parses_run_yaml_blocks():
    sqlite = parse_store_config({"type": "sqlite", "db_path": "~/.llama/x/registry.db"})
    assert isinstance(sqlite, SqliteStoreConfig)
    assert sqlite.resolved_path() == Path.home() / ".llama/x/registry.db"
    assert parse_store_config({"db_path": "/x.db", "type": "sqlite", "namespace": None})

    pg = parse_store_config(
        {"type": "postgres", "host": "db", "port": "5433", "user": "u", "password": "secret"}
    )
    assert isinstance(pg, PostgresStoreConfig)
    assert (pg.port, pg.db, pg.table_name) == (5433, "llamastack", "llamastack_kvstore")
    assert pg.location() == "db:5433/llamastack"
    assert "secret" not in repr(pg)


def test_config_rejects_bad_input():
    with pytest.raises(pydantic.ValidationError):
        parse_store_config({"type": "sqlite", "db_path": "/x.db", "extra": 1})
    with pytest.raises(pydantic.ValidationError):
        parse_store_config({"type": "redis", "db_path": "/x.db"})
    with pytest.raises(pydantic.ValidationError):
        parse_store_config({"type": "postgres"})  # user is required
    with pytest.raises(pydantic.ValidationError):
        PostgresStoreConfig(user="u", table_name="kv; DROP TABLE x")
    with pytest.raises(pydantic.ValidationError):
        SqliteStoreConfig(db_path=" ")


def test_every_config_field_is_described():
    for model in (SqliteStoreConfig, PostgresStoreConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", 'a"b', "x;drop", "é", "a" * 64])
def test_identifiers_are_validated(name):
    with pytest.raises(ValueError):
        validate_identifier(name)
    with pytest.raises(ValueError):
        DocumentStore(SqliteStoreConfig(db_path="/nonexistent/never.db"), name)


def test_identifier_accepts_plain_names():
    assert validate_identifier("chat_completions_2") == "chat_completions_2"
    assert validate_identifier("_x" + "a" * 61)


# -- key-value store ----------------------------------------------------------------------


def test_open_kvstore_picks_the_backend(kv, config):
    expected = SqliteKVStore if config.type == "sqlite" else PostgresKVStore
    assert isinstance(kv, expected)
    assert isinstance(kv, KVStore)


def test_crud(kv):
    assert kv.get("models:m1") is None
    assert kv.delete("models:m1") is False
    kv.set("models:m1", '{"a": 1}')
    assert kv.get("models:m1") == '{"a": 1}'
    kv.set("models:m1", '{"a": 2}')
    assert kv.get("models:m1") == '{"a": 2}'
    assert kv.delete("models:m1") is True
    assert kv.get("models:m1") is None
    assert kv.delete("models:m1") is False


def test_values_round_trip(kv):
    values = {
        "empty": "",
        "unicode": json.dumps({"text": "héllo ☃ 𝄞 中文"}, ensure_ascii=False),
        "big": json.dumps({"blob": "x" * 200_000}),
        "quotes": 'it\'s a "test" with ? and %s and %(x)s',
    }
    for key, value in values.items():
        kv.set(key, value)
    for key, value in values.items():
        assert kv.get(key) == value


def test_keys_and_values_must_be_strings(kv):
    with pytest.raises(TypeError):
        kv.set("k", {"a": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        kv.set("k", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        kv.get(1)  # type: ignore[arg-type]


def test_list_by_prefix(kv):
    keys = [
        "models:b",
        "models:a",
        "models:a:x",
        "models",
        "modelsX",
        "shields:a",
        "models:é",
        "models:Z",
        "models:_",
        "models:%",
    ]
    for key in keys:
        kv.set(key, f"v-{key}")
    expected = sorted(k for k in keys if k.startswith("models:"))
    assert kv.list("models:") == [(k, f"v-{k}") for k in expected]
    assert kv.keys("models:") == expected
    assert [k for k, _ in kv.list()] == sorted(keys)
    assert kv.list("nothing:") == []
    # LIKE wildcards in the prefix are literal characters.
    kv.set("a_b", "1")
    kv.set("axb", "2")
    kv.set("a%c", "3")
    kv.set("azc", "4")
    assert kv.keys("a_") == ["a_b"]
    assert kv.keys("a%") == ["a%c"]


def test_expiry(kv):
    now = datetime.now(timezone.utc)
    kv.set("past", "v", expires_at=now - timedelta(seconds=5))
    kv.set("future", "v", expires_at=now + timedelta(hours=1))
    kv.set("naive-future", "v", expires_at=datetime.now() + timedelta(hours=1))
    kv.set("soon", "v", expires_at=now + timedelta(seconds=1.5))
    assert kv.get("past") is None
    assert kv.get("future") == "v"
    assert kv.get("naive-future") == "v"
    assert kv.get("soon") == "v"
    assert kv.keys() == ["future", "naive-future", "soon"]
    assert kv.delete("past") is False  # expired keys read as absent
    time.sleep(2.0)
    assert kv.get("soon") is None
    assert kv.keys() == ["future", "naive-future"]
    # Setting again without expiry makes a key permanent.
    kv.set("future", "v2")
    assert kv.get("future") == "v2"


def test_set_if_absent(kv):
    assert kv.set_if_absent("models:m", "first") is True
    assert kv.set_if_absent("models:m", "second") is False
    assert kv.get("models:m") == "first"
    kv.set("expired", "old", expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    assert kv.set_if_absent("expired", "new") is True
    assert kv.get("expired") == "new"


def test_namespaces_keep_document_tables_apart(config, table):
    a = DocumentStore(config.model_copy(update={"namespace": "team-a"}), table, {"model": str})
    b = DocumentStore(config.model_copy(update={"namespace": "b"}), table, {"model": str})
    try:
        assert (a.table, b.table) == (f"team_a_{table}", f"b_{table}")
        a.put("x", {"model": "m", "by": "a"})
        b.put("x", {"model": "m", "by": "b"})
        assert (a.get("x")["by"], b.get("x")["by"]) == ("a", "b")
        assert a.count({"model": "m"}) == 1
    finally:
        a.close()
        b.close()


def test_namespaces_share_one_table(config):
    a = open_kvstore(config.model_copy(update={"namespace": "a"}))
    b = open_kvstore(config.model_copy(update={"namespace": "b"}))
    plain = open_kvstore(config)
    try:
        a.set("k", "from a")
        b.set("k", "from b")
        assert (a.get("k"), b.get("k")) == ("from a", "from b")
        assert a.list() == [("k", "from a")]
        assert plain.keys() == ["a:k", "b:k"]
        assert a.delete("k") and plain.get("b:k") == "from b"
    finally:
        for store in (a, b, plain):
            store.close()


def test_writes_are_visible_to_another_store_at_once(config):
    one, two = open_kvstore(config), open_kvstore(config)
    try:
        for i in range(20):
            one.set("models:m", str(i))
            assert two.get("models:m") == str(i)
        two.delete("models:m")
        assert one.get("models:m") is None
        assert one.list("models:") == []
    finally:
        one.close()
        two.close()


def test_data_outlives_the_store_object(config):
    store = open_kvstore(config)
    store.set("k", "v")
    store.close()
    with open_kvstore(config) as again:
        assert again.get("k") == "v"


def test_closed_store_is_unavailable(config):
    store = open_kvstore(config)
    store.close()
    with pytest.raises(ServiceUnavailableError, match="closed"):
        store.get("k")


def test_writes_are_visible_to_another_process(config, kv):
    kv.set("hello", "from parent")
    with _spawn().Pool(1) as pool:
        seen = pool.apply(_worker_roundtrip, (config, "hello"))
    assert seen == "from parent"
    assert kv.get("hello:reply").startswith("child ")


def test_concurrent_writers_in_several_processes(config, kv):
    workers, n = 4, 40
    with _spawn().Pool(workers) as pool:
        results = pool.starmap(_worker_write, [(config, w, n) for w in range(workers)])
    keys = kv.keys("w:")
    assert len(keys) == workers * n
    for w in range(workers):
        assert json.loads(kv.get(f"w:{w}:{n - 1:04d}")) == {"worker": w, "i": n - 1}
    assert kv.get("shared") in {str(w) for w in range(workers)}
    winners = [w for w, won in results if won]
    assert len(winners) == 1
    assert kv.get("winner") == str(winners[0])


def test_concurrent_threads_share_one_store(kv):
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(30):
                kv.set(f"t:{t}:{i:02d}", str(i))
                assert kv.get(f"t:{t}:{i:02d}") == str(i)
            assert len(kv.keys(f"t:{t}:")) == 30
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(kv.keys("t:")) == 180


# -- document store -----------------------------------------------------------------------


def _completion(i: int, model: str, created: int) -> dict:
    return {
        "id": f"chatcmpl-{i:02d}",
        "model": model,
        "created": created,
        "choices": [{"message": {"role": "assistant", "content": f"answer {i}"}}],
    }


@pytest.fixture
def docs(config, table):
    store = DocumentStore(config, table, {"model": str, "created": int})
    yield store
    store.close()


def test_documents_crud(docs):
    doc = _completion(1, "m1", 100)
    assert docs.get(doc["id"]) is None
    docs.put(doc["id"], doc)
    assert docs.get(doc["id"]) == doc
    changed = {**doc, "model": "m2"}
    docs.put(doc["id"], changed)
    assert docs.get(doc["id"]) == changed
    assert docs.query({"model": "m1"}) == ([], False)
    assert docs.query({"model": "m2"}) == ([changed], False)
    assert docs.delete(doc["id"]) is True
    assert docs.delete(doc["id"]) is False
    assert docs.get(doc["id"]) is None


def test_documents_filter_and_order(docs):
    items = [_completion(i, "a" if i % 2 else "b", 1000 + i // 3) for i in range(10)]
    for item in items:
        docs.put(item["id"], item)

    def ids(result):
        return [d["id"] for d in result[0]]

    newest_first = sorted(items, key=lambda d: (d["created"], d["id"]), reverse=True)
    assert ids(docs.query()) == [d["id"] for d in newest_first]
    oldest_first = sorted(items, key=lambda d: (d["created"], d["id"]))
    assert ids(docs.query(desc=False)) == [d["id"] for d in oldest_first]
    only_a = [d["id"] for d in oldest_first if d["model"] == "a"]
    assert ids(docs.query({"model": "a"}, desc=False)) == only_a
    assert ids(docs.query({"model": ["a", "b"]}, desc=False)) == [d["id"] for d in oldest_first]
    assert docs.query({"model": []}) == ([], False)
    assert ids(docs.query({"model": "a", "created": 1001}, desc=False)) == [
        "chatcmpl-03",
        "chatcmpl-05",
    ]
    assert ids(docs.query({"id": "chatcmpl-04"})) == ["chatcmpl-04"]
    assert ids(docs.query(order_by="id", desc=False)) == sorted(d["id"] for d in items)
    assert docs.count() == 10
    assert docs.count({"model": "a"}) == 5


@pytest.mark.parametrize("desc", [True, False])
@pytest.mark.parametrize("where", [{}, {"model": "a"}])
def test_documents_paginate_with_cursor(docs, desc, where):
    items = [_completion(i, "a" if i % 3 else "b", 50 + i // 4) for i in range(13)]
    items.append({"id": "no-created-1", "model": "a"})  # NULL order values
    items.append({"id": "no-created-2", "model": "a"})
    for item in items:
        docs.put(item["id"], item)
    everything, has_more = docs.query(where, desc=desc)
    assert not has_more

    pages, after = [], None
    while True:
        page, has_more = docs.query(where, desc=desc, after=after, limit=3)
        pages.append(page)
        if not has_more:
            break
        after = page[-1]["id"]
    walked = [d for page in pages for d in page]
    assert walked == everything
    assert all(len(page) == 3 for page in pages[:-1])
    # NULLs sort lowest: first when ascending, last when descending.
    ends = [d["id"] for d in (everything[-2:] if desc else everything[:2])]
    assert ends == (["no-created-2", "no-created-1"] if desc else ["no-created-1", "no-created-2"])


def test_documents_limit_edges(docs):
    for i in range(3):
        docs.put(f"d{i}", {"created": i})
    assert docs.query(limit=0) == ([], True)
    page, has_more = docs.query(limit=3)
    assert len(page) == 3 and has_more is False
    page, has_more = docs.query(limit=2)
    assert [d["created"] for d in page] == [2, 1] and has_more is True
    assert docs.query(after="d0") == ([], False)
    with pytest.raises(ValueError):
        docs.query(limit=-1)


def test_documents_bad_queries(docs):
    docs.put("d", {"model": "m", "created": 1})
    with pytest.raises(BadRequestError) as err:
        docs.query(after="missing")
    assert err.value.field == "after"
    with pytest.raises(ValueError, match="not an indexed column"):
        docs.query({"choices": 1})
    with pytest.raises(ValueError, match="not an indexed column"):
        docs.query(order_by="model; DROP TABLE x")
    with pytest.raises(ValueError, match="indexed as int"):
        docs.query({"created": "1"})
    with pytest.raises(ValueError, match="indexed as str"):
        docs.put("e", {"model": 3})
    with pytest.raises(ValueError, match="reserved"):
        DocumentStore(SqliteStoreConfig(db_path="/nonexistent/x.db"), "t", {"doc": str})
    with pytest.raises(ValueError, match="indexed types"):
        DocumentStore(SqliteStoreConfig(db_path="/nonexistent/x.db"), "t", {"x": dict})


def test_documents_typed_columns(config, table):
    with DocumentStore(config, table, {"score": float, "done": bool, "n": int}) as store:
        store.put("a", {"score": 1, "done": True, "n": 3})
        store.put("b", {"score": 2.5, "done": False, "n": 1})
        store.put("c", {"score": None})
        assert [x["n"] for x in store.query({"done": True})[0]] == [3]
        assert [x.get("score") for x in store.query(order_by="score")[0]] == [2.5, 1, None]
        assert store.query({"done": None})[0] == [{"score": None}]
        assert [x["n"] for x in store.query({"n": [1, 3]}, order_by="n", desc=False)[0]] == [1, 3]


def test_documents_visible_to_another_store(config, table):
    one = DocumentStore(config, table, {"model": str, "created": int})
    two = DocumentStore(config, table, {"model": str, "created": int})
    try:
        one.put("x", {"model": "m", "created": 1})
        assert two.get("x") == {"model": "m", "created": 1}
        assert two.query({"model": "m"})[0] == [{"model": "m", "created": 1}]
        two.delete("x")
        assert one.get("x") is None
    finally:
        one.close()
        two.close()


def test_documents_written_by_several_processes(config, table, docs):
    workers, n = 3, 20
    with _spawn().Pool(workers) as pool:
        pool.starmap(_worker_docs, [(config, table, w, n) for w in range(workers)])
    assert docs.count() == workers * n
    page, has_more = docs.query({"model": "m1"}, order_by="created", desc=True, limit=5)
    assert [d["created"] for d in page] == [19, 18, 17, 16, 15] and has_more


def test_new_indexed_columns_are_added_and_filled(config, table):
    with DocumentStore(config, table, {"model": str}) as first:
        for i in range(4):
            first.put(f"d{i}", {"model": "m", "created": 10 - i, "user": "u" if i else 7})
    with DocumentStore(config, table, {"model": str, "created": int, "user": str}) as second:
        assert [d["created"] for d in second.query(desc=False)[0]] == [7, 8, 9, 10]
        # A stored value of the wrong type is left out of its column.
        assert [d["created"] for d in second.query({"user": None})[0]] == [10]
        assert second.count({"user": "u"}) == 3
    with DocumentStore(config, table, {"model": str}) as third:  # fewer columns is fine
        assert third.count() == 4


def test_kv_and_documents_share_one_database(config, table):
    with open_kvstore(config) as kv, DocumentStore(config, table, {"created": int}) as docs:
        kv.set("k", "v")
        docs.put("k", {"created": 1})
        assert kv.get("k") == "v"
        assert docs.get("k") == {"created": 1}


# -- errors -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _assert_clean(message: str) -> None:
    assert "Traceback" not in message
    assert "\n" not in message


def test_sqlite_parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "sub" / "kv.db"
    with pytest.raises(ServiceUnavailableError) as err:
        open_kvstore(SqliteStoreConfig(db_path=str(path)))
    assert err.value.message.startswith(f"SQLite store at {path} is unavailable: cannot create")
    _assert_clean(err.value.message)
    with pytest.raises(ServiceUnavailableError, match="SQLite store at"):
        DocumentStore(SqliteStoreConfig(db_path=str(path)), "t")


def test_sqlite_path_is_a_directory(tmp_path):
    with pytest.raises(ServiceUnavailableError, match=f"SQLite store at {tmp_path} is unavailable"):
        open_kvstore(SqliteStoreConfig(db_path=str(tmp_path)))


def test_sqlite_file_is_not_a_database(tmp_path):
    path = tmp_path / "kv.db"
    path.write_bytes(b"this is not a database file" * 100)
    with pytest.raises(ServiceUnavailableError) as err:
        open_kvstore(SqliteStoreConfig(db_path=str(path)))
    assert err.value.message == f"SQLite store at {path} is unavailable: file is not a database"


def test_sqlite_permission_denied(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    path = locked / "sub" / "kv.db"
    try:
        if os.geteuid() == 0:  # root ignores permissions: try as nobody, in a child
            with _spawn().Pool(1) as pool:
                outcome = pool.apply(_worker_open, (str(path), True))
        else:
            outcome = _worker_open(str(path), False)
    finally:
        locked.chmod(0o700)
    assert outcome.startswith(f"ServiceUnavailableError: SQLite store at {path} is unavailable")
    assert "Permission denied" in outcome


def test_sqlite_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with open_kvstore({"type": "sqlite", "db_path": "~/deep/dir/kv.db"}) as store:
        store.set("k", "v")
    assert (tmp_path / "deep" / "dir" / "kv.db").is_file()


def test_postgres_unreachable():
    port = _free_port()
    config = PostgresStoreConfig(host="127.0.0.1", port=port, user="u", password="hunter2")
    with pytest.raises(ServiceUnavailableError) as err:
        open_kvstore(config)
    message = err.value.message
    assert message.startswith(f"PostgreSQL store at 127.0.0.1:{port}/llamastack is unavailable: ")
    assert "refused" in message.lower()
    assert "hunter2" not in message
    _assert_clean(message)
    assert err.value.status_code == 503
    with pytest.raises(ServiceUnavailableError, match=f"127.0.0.1:{port}/llamastack"):
        DocumentStore(config, "t")


def test_postgres_wrong_password(postgres_config):
    config = postgres_config.model_copy(update={"password": "wrong-password"})
    with pytest.raises(ServiceUnavailableError) as err:
        open_kvstore(config)
    message = err.value.message
    assert message.startswith(f"PostgreSQL store at {postgres_config.location()} is unavailable")
    assert "password authentication failed" in message
    assert "wrong-password" not in message
    _assert_clean(message)


def test_postgres_unknown_database(postgres_config):
    config = postgres_config.model_copy(update={"db": "no_such_db"})
    with pytest.raises(ServiceUnavailableError, match='database "no_such_db" does not exist'):
        open_kvstore(config)


def test_postgres_reconnects_after_the_connection_drops(postgres_config, postgres_server):
    config = postgres_config.model_copy(update={"table_name": _unique("kv")})
    with open_kvstore(config) as store:
        store.set("k", "v")
        (pid,) = store._backend.fetchall("SELECT pg_backend_pid()")[0]
        with postgres_server.admin_connect() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # wait until the backend is gone
            with postgres_server.admin_connect() as admin:
                row = admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
                if row.fetchone() is None:
                    break
            time.sleep(0.05)
        assert store.get("k") == "v"
        (new_pid,) = store._backend.fetchall("SELECT pg_backend_pid()")[0]
        assert new_pid != pid


def test_unavailable_error_survives_pickling(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ServiceUnavailableError) as err:
        open_kvstore(SqliteStoreConfig(db_path=str(tmp_path / "file" / "kv.db")))
    copy = pickle.loads(pickle.dumps(err.value))
    assert isinstance(copy, ServiceUnavailableError)
    assert copy.message == err.value.message


def test_postgres_without_privileges(postgres_config, postgres_server):
    with postgres_server.admin_connect() as admin:
        admin.execute("CREATE ROLE stackray_reader LOGIN PASSWORD 'reader'")
        admin.execute(f"GRANT CONNECT ON DATABASE {postgres_config.db} TO stackray_reader")
    try:
        config = postgres_config.model_copy(
            update={"user": "stackray_reader", "password": "reader", "table_name": _unique("kv")}
        )
        with pytest.raises(ServiceUnavailableError) as err:
            open_kvstore(config)
        assert err.value.message.startswith(
            f"PostgreSQL store at {postgres_config.location()} is unavailable: "
        )
        assert "permission denied" in err.value.message
    finally:
        with postgres_server.admin_connect() as admin:
            admin.execute(f"REVOKE CONNECT ON DATABASE {postgres_config.db} FROM stackray_reader")
            admin.execute("DROP ROLE stackray_reader")


def test_increment_counts_atomically_and_restarts_after_expiry(config):
    stores = [open_kvstore(config) for _ in range(2)]  # two replicas' stores
    try:
        counts: list[int] = []

        def bump(store: KVStore) -> None:
            for _ in range(25):
                counts.append(store.increment("quota:alice:1"))

        threads = [threading.Thread(target=bump, args=(s,)) for s in stores for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(counts) == list(range(1, 101))  # no count lost, none repeated
        soon = datetime.now(timezone.utc) + timedelta(seconds=1)
        assert stores[0].increment("quota:bob:1", soon) == 1
        assert stores[1].increment("quota:bob:1", soon) == 2
        time.sleep(1.2)
        assert stores[0].increment("quota:bob:1", soon + timedelta(seconds=5)) == 1
    finally:
        for s in stores:
            s.close()
