"""How the local stack finds (or starts) PostgreSQL and Redis."""

from __future__ import annotations

import uuid
import warnings

import psycopg
import pytest

from chalicelib.adapters.postgres import migrate
from chalicelib.config import Settings
from devtools import services

pytestmark = pytest.mark.integration


def test_set_but_unreachable_urls_fail_fast_with_a_clear_message(tmp_path) -> None:
    """... before anything is made: not even this checkout's database, when only
    REDIS_URL or OPENSEARCH_URL is set (and wrong)."""
    existed = _database_exists(services.LOCAL_DATABASE)
    port = services.free_port()
    with pytest.raises(services.ServiceUnavailable) as err:
        services.resolve(
            env={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x"},
            data_dir=tmp_path,
            with_moto=False,
            with_search=False,
        )
    assert "DATABASE_URL is set" in str(err.value)
    with pytest.raises(services.ServiceUnavailable) as err:
        services.resolve(
            env={"REDIS_URL": f"redis://127.0.0.1:{port}/0"},
            data_dir=tmp_path,
            with_moto=False,
            with_search=False,
        )
    assert "REDIS_URL is set" in str(err.value)
    with pytest.raises(services.ServiceUnavailable) as err:
        services.resolve(
            env={"OPENSEARCH_URL": f"http://127.0.0.1:{port}"}, data_dir=tmp_path, with_moto=False
        )
    assert "OPENSEARCH_URL is set" in str(err.value)
    assert _database_exists(services.LOCAL_DATABASE) == existed
    assert not any(tmp_path.iterdir())  # no embedded server was started either


def test_the_machines_servers_are_used_with_a_database_of_their_own(tmp_path) -> None:
    """Not the server's ``test`` (or any other) database: this checkout's own
    ``docs_local_<id>``, created when missing, so the local stack, other clones and
    other tools never mix their data."""
    if services.postgres_reachable(services.DEFAULT_SERVER_URL) or services.redis_reachable(
        services.DEFAULT_REDIS_URL
    ):
        pytest.skip("nothing answers on the default PostgreSQL/Redis addresses here")
    existed = _database_exists(services.LOCAL_DATABASE)
    stack = services.resolve(env={}, data_dir=tmp_path, with_moto=False, with_search=False)
    try:
        assert stack.database_url == services.DEFAULT_DATABASE_URL
        assert stack.database_url.endswith(f"/{services.LOCAL_DATABASE}")
        assert services.LOCAL_DATABASE.startswith("docs_local_")
        assert services.postgres_reachable(stack.database_url) is None
        assert stack.redis_url == services.DEFAULT_REDIS_URL
        assert _database_exists(services.LOCAL_DATABASE)
    finally:
        stack.stop()
        if not existed:  # made by this test (a fresh clone's CI run): not left behind
            from tests.conftest import drop_database

            drop_database(stack.database_url)


def _database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(services.DEFAULT_SERVER_URL, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


def test_the_local_database_is_created_once(tmp_path) -> None:
    from tests.conftest import ADMIN_DATABASE_URL, drop_database

    name = f"docs_t_local_{uuid.uuid4().hex[:8]}"
    url = services.ensure_database(ADMIN_DATABASE_URL, name)
    try:
        assert url.endswith(f"/{name}")
        assert services.ensure_database(ADMIN_DATABASE_URL, name) == url  # exists: kept
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (name,)
    finally:
        drop_database(url)


def test_a_database_that_does_not_exist_is_named_with_how_to_create_it(tmp_path) -> None:
    name = f"docs_t_missing_{uuid.uuid4().hex[:8]}"
    with pytest.raises(services.ServiceUnavailable) as err:
        services.resolve(
            env={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}"},
            data_dir=tmp_path,
            with_moto=False,
            with_search=False,
        )
    said = str(err.value)
    assert f"names the database {name!r}, which does not exist" in said
    assert f"createdb -h 127.0.0.1 -p 5432 -U postgres {name}" in said
    assert "does not answer" not in said


def test_urls_of_the_wrong_kind_stop_resolve_with_one_sentence(tmp_path) -> None:
    for env, expected in (
        ({"REDIS_URL": "127.0.0.1:6379"}, "REDIS_URL must be a URL starting with redis://"),
        ({"DATABASE_URL": "127.0.0.1:5432"}, "DATABASE_URL must be a URL starting with"),
        ({"OPENSEARCH_URL": "127.0.0.1:9200"}, "OPENSEARCH_URL must be a URL starting with"),
    ):
        with pytest.raises(services.ServiceUnavailable) as err:
            services.resolve(env=env, data_dir=tmp_path, with_moto=False, with_search=False)
        assert str(err.value).startswith(expected)


def test_embedded_switch_starts_private_postgres_redis_and_moto(tmp_path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stack = services.resolve(embedded=True, env={}, data_dir=tmp_path, with_moto=True)
    try:
        assert not [w for w in caught if "XDG_RUNTIME_DIR" in str(w.message)]
        assert "embedded" in stack.notes[0] and "embedded" in stack.notes[1]
        with psycopg.connect(stack.database_url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (
                services.LOCAL_DATABASE,
            )
        assert stack.database_url != services.DEFAULT_DATABASE_URL
        assert services.postgres_reachable(stack.database_url) is None
        assert services.redis_reachable(stack.redis_url) is None
        runtime = Settings(database_url=stack.database_url)
        assert migrate(stack.database_url, runtime_user=runtime.runtime_user)[0] == "0001_documents"
        # the service's own login (trust auth on the embedded server too) acts as docs_app
        with psycopg.connect(runtime.runtime_database_url) as conn:
            assert conn.execute("SELECT session_user").fetchone() == (runtime.runtime_user,)
            conn.execute("SET ROLE docs_app")
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=stack.s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        s3.create_bucket(Bucket="probe")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["probe"]
        assert any("embedded in-memory OpenSearch" in n for n in stack.notes)
        assert stack.opensearch_url
        assert services.opensearch_reachable(stack.opensearch_url) is None
    finally:
        stack.stop()
    assert services.redis_reachable(stack.redis_url) is not None, "embedded Redis was stopped"
    assert stack.opensearch_url
    assert services.opensearch_reachable(stack.opensearch_url, timeout=1) is not None
