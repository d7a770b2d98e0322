"""The CLI's own checks, before it touches anything."""

from __future__ import annotations

import pytest

from devtools import cli


def test_token_refuses_a_role_the_service_does_not_know(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCS_JWT_SECRET", "s" * 48)
    assert cli.main(["token", "--org", "acme", "--sub", "alice", "--roles", "superuser"]) == 2
    said = capsys.readouterr()
    assert said.out == ""
    assert "unknown role 'superuser'" in said.err and "reader, writer, admin" in said.err
    assert cli.main(["token", "--org", "acme", "--sub", "alice", "--roles", "writer,admin"]) == 0
    assert capsys.readouterr().out.startswith("eyJ")


def test_serve_help_describes_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    text = capsys.readouterr().out
    for flag in ("--host", "--port", "--workers", "--embedded", "--detach"):
        line = next(line for line in text.splitlines() if line.strip().startswith(flag))
        assert len(line.split(maxsplit=2)) == 3, f"{flag} has no description: {line!r}"
