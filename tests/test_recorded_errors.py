"""Errors recorded on the box, without the data being handled, and the console page that
lists them; log lines for journald. The recorded file is read back as an operator would."""

from __future__ import annotations

import io
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from litestar import get
from litestar.params import FromPath
from litestar.testing import TestClient

from appliance.app import create_app
from appliance.clinic.schemas import UserPublic
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.jobs import runner
from appliance.jobs.runner import StageContext
from appliance.logs import JournalPriority, configure_logging, writes_to_journal
from appliance.observability.errors import errors_dir, read_errors, record_error
from appliance.settings import Settings
from tests.conftest import Browser, signed_in, signed_in_admin
from tests.test_metrics import recording, samples, scrape, value

__all__ = ["recording"]  # the fixture, shared with the metrics tests


class BrokenStage:
    """A probe stage with a bug: the exception's message quotes the patient."""

    name: str = "probe"
    purpose: Purpose = Purpose.recording
    after: str | None = None
    version: str = "broken-1"

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def run(self, context: StageContext) -> None:
        raise KeyError(self.secret)

    def save(self, session: Any, context: StageContext, output: Any) -> None:
        raise AssertionError("never reached")


# Errors recorded on the box -------------------------------------------------------------------

SECRET = "Bob Brennan, 14 Elm Street"


def test_an_unhandled_request_error_is_recorded_with_its_route_template_and_no_data(
    settings: Settings, database: Database
) -> None:
    app = create_app(settings, database)

    @get("/test-only/{patient_id:uuid}", sync_to_thread=False)
    def broken(patient_id: FromPath[uuid.UUID]) -> None:
        details = {"name": SECRET}
        raise RuntimeError(details["name"])

    app.register(broken)
    patient_id = uuid.uuid4()
    with TestClient(app=app) as client:
        response = client.get(f"/test-only/{patient_id}?q=Brennan")
    assert response.status_code == 500
    raw = (errors_dir(settings) / "errors.jsonl").read_text()
    assert "Brennan" not in raw
    assert "Elm" not in raw
    assert str(patient_id) not in raw
    [error], total = read_errors(errors_dir(settings))
    assert total == 1
    assert (error.source, error.method, error.where) == (
        "request",
        "GET",
        "/test-only/{patient_id}",
    )
    assert error.exc_type == "RuntimeError"
    assert error.request_id == response.headers["x-request-id"]
    assert any(
        "test_recorded_errors.py" in frame and "in broken" in frame
        for frame in error.sections[-1].frames
    )
    assert (errors_dir(settings) / "errors.jsonl").stat().st_mode & 0o077 == 0
    counted = samples(scrape(app).text)
    where = {"method": "GET", "route": "/test-only/{patient_id}", "status_class": "5xx"}
    assert value(counted, "appliance_http_request_duration_seconds_count", **where) == 1


def test_a_job_that_crashes_is_recorded_by_stage_without_the_exception_message(
    database: Database, settings: Settings, store: KeyStore, recording: Any
) -> None:
    ran = runner.drain(database, settings, store, "test-worker", {"probe": BrokenStage(SECRET)})
    assert ran >= 1
    raw = (errors_dir(settings) / "errors.jsonl").read_text()
    assert "Brennan" not in raw
    found, _ = read_errors(errors_dir(settings))
    error = next(e for e in found if e.where == "probe")
    assert (error.source, error.exc_type) == ("job", "KeyError")
    assert any("in run" in frame for frame in error.sections[-1].frames)


def test_the_cause_of_an_error_is_recorded_as_its_type_and_frames(tmp_path: Path) -> None:
    try:
        try:
            {"someone else": 1}[SECRET]
        except KeyError as inner:
            raise ValueError(SECRET) from inner
    except ValueError as exc:
        entry = record_error(tmp_path, "job", "report", exc)
    assert entry is not None
    assert [s.exc_type for s in entry.sections] == ["KeyError", "ValueError"]
    assert SECRET not in (tmp_path / "errors.jsonl").read_text()


def test_the_error_file_rotates_instead_of_growing_and_a_torn_line_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.observability import errors

    monkeypatch.setattr(errors, "MAX_BYTES", 4000)
    for n in range(40):
        record_error(tmp_path, "job", f"stage-{n}", RuntimeError())
    with (tmp_path / "errors.jsonl").open("a") as handle:
        handle.write('{"id": "torn", "at": "2026-')
    kept, total = read_errors(tmp_path, limit=1000)
    assert (tmp_path / "errors.jsonl").stat().st_size <= 4000 + 100
    assert (tmp_path / "errors.jsonl.1").stat().st_size <= 4000
    assert total == len(kept) < 40
    assert kept[0].where == "stage-39"  # newest first
    assert [int(e.where.split("-")[1]) for e in kept] == sorted(
        (int(e.where.split("-")[1]) for e in kept), reverse=True
    )


def test_the_errors_page_is_for_administrators_newest_first_in_pages(
    settings: Settings, people: dict[str, UserPublic], browser: Browser
) -> None:

    for n in range(30):
        record_error(errors_dir(settings), "job", f"stage-{n:02d}", RuntimeError())
    adam, _ = signed_in_admin(browser)
    first = adam.get("/console/errors")
    assert first.status_code == 200
    assert 'href="/console/errors"' in first.text  # linked from the navigation
    assert "stage-29" in first.text
    assert "stage-05" in first.text
    assert "stage-04" not in first.text
    assert first.text.index("stage-29") < first.text.index("stage-28")
    assert 'href="/console/errors?page=2"' in first.text
    second = adam.get("/console/errors?page=2")
    assert "stage-04" in second.text
    assert "stage-00" in second.text
    assert "stage-05" not in second.text
    alice, _ = signed_in(browser, "alice@clinic.example")
    assert alice.get("/console/errors").status_code == 403
    assert 'href="/console/errors"' not in alice.get("/console/patients").text


# Logs for journald ----------------------------------------------------------------------------


def test_text_format_carries_the_same_redacted_fields_as_json() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    try:
        configure_logging("INFO", stream, fmt="text")
        logging.getLogger("appliance.test").info(
            "job failed", extra={"stage": "probe", "email": "b@x"}
        )
    finally:
        root.handlers[:], root.level = saved
    line = stream.getvalue().strip()
    assert "INFO    appliance.test: job failed" in line
    assert "stage=probe" in line
    assert "email=[redacted]" in line
    assert "b@x" not in line


def test_lines_for_journald_carry_the_syslog_priority_of_their_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    with (tmp_path / "journal").open("w") as stream:
        info = os.fstat(stream.fileno())
        assert not writes_to_journal(stream)
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        assert writes_to_journal(stream)
        root = logging.getLogger()
        saved = (root.handlers[:], root.level)
        try:
            configure_logging("INFO", stream)
            assert isinstance(root.handlers[0].formatter, JournalPriority)
            logging.getLogger("appliance.test").error("boom")
            logging.getLogger("appliance.test").info("fine")
            root.handlers[0].flush()
        finally:
            root.handlers[:], root.level = saved
    error, fine = (tmp_path / "journal").read_text().splitlines()
    assert error.startswith("<3>{")
    assert json.loads(error[3:])["msg"] == "boom"
    assert fine.startswith("<6>{")
