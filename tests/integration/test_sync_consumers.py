"""Long-running search sync consumers register on the outbox they drain: one that
would write to another index than a registered one is refused, in one sentence
(devtools/sync_worker.py over ``postgres_outbox.listen``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devtools import sync_worker

pytestmark = pytest.mark.integration


@pytest.fixture
def twin(search_container: Any) -> Iterator[Any]:
    """Builds containers on the same database with other search settings."""
    from chalicelib import bootstrap

    built: list[Any] = []

    def make(**update: Any) -> Any:
        c = bootstrap.build(search_container.settings.model_copy(update=update))
        built.append(c)
        return c

    yield make
    for c in built:
        c.close()


def test_consumers_of_the_same_index_share_the_outbox(search_container: Any, twin: Any) -> None:
    first = sync_worker.register(search_container)
    try:
        same = twin()  # same OpenSearch, same alias: another Lambda-like consumer
        second = sync_worker.register(same)
        assert [c.key for c in second.others()] == [first.me.key]
        assert first.me.key == second.me.key
        second.close()
    finally:
        first.close()


def test_a_consumer_of_another_index_is_refused(search_container: Any, twin: Any) -> None:
    first = sync_worker.register(search_container)
    try:
        for other in (
            twin(search_alias=search_container.settings.search_alias + "-other"),
            twin(opensearch_url="http://127.0.0.1:1"),
        ):
            with pytest.raises(sync_worker.ConsumerConflict) as err:
                sync_worker.register(other)
            message = str(err.value)
            assert message.startswith("another search sync (pid ")
            assert search_container.settings.search_alias in message
            assert "own database (DATABASE_URL)" in message and "\n" not in message
    finally:
        first.close()
    # once the first is gone (its connection closed), the other may start
    sync_worker.register(twin(opensearch_url="http://127.0.0.1:1")).close()


def test_the_listener_wakes_on_commit(search_container: Any) -> None:
    """What the loop waits on: a write's NOTIFY (DOCS_SEARCH_NUDGE=notify)."""
    import threading

    from chalicelib import bootstrap

    notifying = bootstrap.build(search_container.settings.model_copy(
        update={"search_nudge": "notify"}
    ))  # fmt: skip
    listener = sync_worker.register(search_container)
    woke = threading.Event()
    try:

        def wait() -> None:
            if listener.wait(60):  # True: a notification, not the timeout
                woke.set()

        waiter = threading.Thread(target=wait)
        waiter.start()
        from tests.conftest import Invoker, make_token

        bootstrap.set_container(notifying)
        try:
            r = Invoker(make_token(org="listen-org"))("POST", "/documents", {"title": "wake"})
            assert r.status == 201, r
        finally:
            bootstrap.set_container(search_container)
        waiter.join(60)
        assert woke.is_set()
    finally:
        listener.close()
        notifying.close()


def test_one_pass_takes_every_commit_announced_before_it(search_container: Any) -> None:
    """Commits made while a consumer is busy wake it once: the notifications already
    received are taken before its next pass (``take_pending``), so the wait after it
    does not return at once for commits that pass has seen."""
    from chalicelib import bootstrap
    from tests.conftest import Invoker, make_token

    notifying = bootstrap.build(search_container.settings.model_copy(
        update={"search_nudge": "notify"}
    ))  # fmt: skip
    listener = sync_worker.register(search_container)
    invoke = Invoker(make_token(org="burst-org"))

    def write(n: int) -> None:
        bootstrap.set_container(notifying)
        try:
            for i in range(n):
                assert invoke("POST", "/documents", {"title": f"burst {i}"}).status == 201
        finally:
            bootstrap.set_container(search_container)

    try:
        write(1)
        assert listener.wait(60)  # woken: the consumer would run its pass now
        write(4)  # ... during which four more commits are announced
        assert listener.take_pending() == 4  # taken before the next pass, without waiting
        assert listener.take_pending() == 0
        assert not listener.wait(0.2)  # nothing left to wake the loop again
    finally:
        listener.close()
        notifying.close()
