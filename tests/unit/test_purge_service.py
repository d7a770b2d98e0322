"""The purge's order and failure handling, at the ports (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.purge import PurgeTask
from chalicelib.service_layer.purge import Purge
from chalicelib.settings_groups import PurgeSettings
from devtools.events import LambdaContext

NOW = datetime(2026, 12, 1, tzinfo=UTC)


class Store:
    def __init__(self, due: list[tuple[str, str]]) -> None:
        self.due_docs = due
        self.log: list[str] = []
        self.tasks: dict[int, PurgeTask] = {}
        self.cutoffs: list[datetime] = []

    def due(self, cutoff: datetime, limit: int) -> list[tuple[str, str]]:
        self.cutoffs.append(cutoff)
        return self.due_docs[:limit]

    def purge(
        self, org: str, doc_id: str, cutoff: datetime, *, request_id: str | None = None
    ) -> PurgeTask | None:
        if doc_id == "restored":
            return None
        self.log.append(f"db:{doc_id}")
        task = PurgeTask(len(self.tasks) + 1, org, doc_id, [f"content/{org}/{doc_id}/U"], version=5)
        self.tasks[task.id] = task
        return task

    def pending(self, limit: int) -> list[PurgeTask]:
        return []

    def finish(self, task: PurgeTask) -> None:
        self.log.append(f"finish:{task.doc_id}")
        del self.tasks[task.id]

    def failed(self, task: PurgeTask, reason: str) -> None:
        self.log.append(f"failed:{task.doc_id}")


class Objects:
    def __init__(self, log: list[str], fail: bool = False) -> None:
        self.log, self.fail = log, fail

    def delete_every_version(self, keys: list[str]) -> int:
        if self.fail:
            raise DependencyUnavailable("down")
        self.log.append(f"s3:{keys[0]}")
        return 3


class Cache:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def evict_document(self, org: str, doc_id: str) -> bool:
        self.log.append(f"cache:{doc_id}")
        return True


def _purge(store: Store, **kw: Any) -> Purge:
    return Purge(
        store,
        objects=kw.pop("objects", Objects(store.log)),
        cache=Cache(store.log),
        droppers=[lambda org, doc_id: store.log.append(f"realtime:{doc_id}")],
        settings=PurgeSettings(retention=timedelta(days=30)),
        clock=lambda: NOW,
        **kw,
    )


def test_rows_first_then_objects_cache_and_subscriptions_then_the_task() -> None:
    store = Store([("acme", "d1"), ("acme", "restored")])
    report = _purge(store).run()
    assert store.cutoffs == [NOW - timedelta(days=30)]
    assert store.log == [
        "db:d1", "s3:content/acme/d1/U", "cache:d1", "realtime:d1", "finish:d1",
    ]  # fmt: skip
    assert (report.purged, report.finished, report.skipped, report.objects) == (1, 1, 1, 3)


def test_a_failure_keeps_the_task_and_fails_the_scheduled_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = Store([("acme", "d1")])
    purge = _purge(store, objects=Objects(store.log, fail=True))
    report = purge.run()
    assert store.log == ["db:d1", "failed:d1"]
    assert (report.failed, report.finished) == (1, 0) and list(store.tasks)

    import functions.purge as handler_module

    class Container:
        pass

    container = Container()
    container.purge = _purge(Store([("acme", "d2")]), objects=Objects([], fail=True))  # type: ignore[attr-defined]
    monkeypatch.setattr(handler_module.bootstrap, "container", lambda: container)
    with pytest.raises(handler_module.PurgeIncomplete):
        handler_module.handler({}, LambdaContext.new())
