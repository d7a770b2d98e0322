"""A failed personal-data export is visible: the job says failed and why, the
worker counts it (an alarmed metric) and goes on with the next job."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest

from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.personal_data import ExportJob
from chalicelib.domain.principal import Principal
from chalicelib.service_layer.personal_data import PersonalDataService, export_failure_reason
from devtools.events import LambdaContext

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ALICE = Principal("alice", "acme", frozenset({"reader"}))


class Jobs:
    """Export jobs in a dict (the port's four calls)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], ExportJob] = {}

    def create(self, org: str, job_id: str, user: str, request_id: str | None) -> ExportJob:
        job = ExportJob(org, job_id, user, "pending", None, None, NOW, None)
        self.rows[(org, job_id)] = job
        return job

    def get(self, org: str, job_id: str) -> ExportJob | None:
        return self.rows.get((org, job_id))

    def due(self, limit: int) -> list[tuple[str, str]]:
        return [k for k, job in self.rows.items() if job.state == "pending"][:limit]

    def finish(self, org: str, job_id: str, *, state: str, key: str | None, error: str | None
               ) -> None:  # fmt: skip
        job = self.rows[(org, job_id)]
        self.rows[(org, job_id)] = replace(
            job, state=state, object_key=key, error=error, finished_at=NOW
        )


class Archive:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, data: bytes, *, content_type: str) -> str:
        self.objects[key] = data
        return "digest"


class Personal:
    """Collects a user's data, or fails for the users in ``broken``."""

    def __init__(self, broken: dict[str, Exception]) -> None:
        self.broken = broken

    def collect(self, org: str, user: str) -> dict[str, Any]:
        if user in self.broken:
            raise self.broken[user]
        return {"documents": [], "grants": [], "audit": []}


def _service(broken: dict[str, Exception]) -> tuple[PersonalDataService, Jobs, Archive]:
    jobs, archive = Jobs(), Archive()
    service = PersonalDataService(
        cast(Any, jobs), cast(Any, Personal(broken)), cast(Any, None),
        archive=lambda: cast(Any, archive), clock=lambda: NOW,
    )  # fmt: skip
    return service, jobs, archive


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (DependencyUnavailable("The object store is unavailable."), "dependency-unavailable"),
        (RuntimeError("a bug"), "internal-error"),
    ],
)
def test_a_failed_export_says_failed_and_why(failure: Exception, reason: str) -> None:
    service, jobs, _ = _service({"alice": failure})
    job = service.start_export(ALICE)
    with pytest.raises(type(failure)):
        service.run("acme", job.id)
    status = service.export_status(ALICE, job.id)
    assert status["state"] == "failed"
    assert status["reason"] == reason
    assert "a bug" not in str(status)  # never the exception's text
    # the row (and the audit trail) keeps the type of what failed, for the operator
    assert jobs.rows[("acme", job.id)].error == f"{reason}: {type(failure).__name__}"


def test_rows_failed_before_reasons_existed_read_as_internal_errors() -> None:
    assert export_failure_reason("ClientError") == "internal-error"
    assert export_failure_reason(None) == "internal-error"


def test_the_worker_counts_a_failed_job_and_runs_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions import export_worker

    service, jobs, archive = _service({"bob": RuntimeError("a bug")})
    bob = service.start_export(Principal("bob", "acme", frozenset({"reader"})))
    alice = service.start_export(ALICE)
    container = SimpleNamespace(personal_data=service)
    monkeypatch.setattr(export_worker.bootstrap, "container", lambda: container)
    counted: dict[str, float] = {}
    monkeypatch.setattr(
        export_worker, "count", lambda name, value=1: counted.__setitem__(name, value)
    )
    result = export_worker.handler({}, LambdaContext.new())
    assert result == {"done": 1, "failed": 1}
    assert counted == {"PersonalDataExports": 1, "PersonalDataExportFailures": 1}
    assert jobs.rows[("acme", bob.id)].state == "failed"
    assert jobs.rows[("acme", alice.id)].state == "ready" and archive.objects
