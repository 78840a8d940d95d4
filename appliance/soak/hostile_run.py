"""Sending the hostile uploads of `appliance.soak.hostile` and checking what is left behind;
`appliance soak fuzz` runs it against a throwaway appliance (its own keys and embedded
PostgreSQL), the CI test against the test fixtures' one. Split from hostile.py for size."""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from appliance.soak.hostile import CSRF, Hostile, generate


@dataclass
class Figures:
    per_category: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: int = 0
    server_errors: list[str] = field(default_factory=list)
    wrong_answers: list[str] = field(default_factory=list)  # refusal not a problem, 2xx for junk
    seconds: list[float] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    peak_rss_mib: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "uploads": sum(self.per_category.values()),
            "per_category": dict(sorted(self.per_category.items())),
            "statuses": dict(sorted(self.statuses.items())),
            "accepted": self.accepted,
            "server_errors": len(self.server_errors),
            "wrong_answers": len(self.wrong_answers),
            "orphans": len(self.orphans),
            "max_seconds": round(max(self.seconds, default=0.0), 3),
            "median_seconds": round(statistics.median(self.seconds or [0.0]), 3),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
        }


def send(client: Any, csrf: str, session_id: str, item: Hostile) -> Any:
    """One upload through the API (raw body) or the console form (multipart)."""
    if item.form_body is not None:
        body = item.form_body.replace(CSRF, csrf.encode())
        return client.post(
            f"/console/sessions/{session_id}/recording",
            content=body,
            headers={"Content-Type": item.form_type},
            follow_redirects=False,
        )
    if item.form:
        return client.post(
            f"/console/sessions/{session_id}/recording",
            data={"csrf_token": csrf},
            files={"recording": (item.filename, item.body, item.content_type or "audio/wav")},
            follow_redirects=False,
        )
    headers = {"X-CSRF-Token": csrf}
    if item.content_type:
        headers["Content-Type"] = item.content_type
    return client.post(
        f"/api/v1/sessions/{session_id}/recording",
        params={"filename": item.filename} if item.filename else None,
        content=item.body,
        headers=headers,
    )


def judge(item: Hostile, response: Any, figures: Figures, index: int) -> None:
    status, label = response.status_code, f"#{index} {item.category}"
    figures.statuses[status] += 1
    ok = status in (202, 303)
    figures.accepted += ok
    if status >= 500:
        figures.server_errors.append(f"{label}: {status} {response.text[:200]}")
    elif ok and item.valid is False:
        figures.wrong_answers.append(f"{label}: accepted junk ({status})")
    elif not ok and item.valid is True:
        figures.wrong_answers.append(f"{label}: refused valid audio ({status})")
    elif not ok and not item.form:
        body = response.json() if "problem+json" in response.headers.get("content-type", "") else {}
        if body.get("status") != status or not body.get("title"):
            figures.wrong_answers.append(f"{label}: {status} is not an RFC 7807 problem")


def run_uploads(client: Any, csrf: str, session_id: str, items: list[Hostile]) -> Figures:
    figures = Figures()
    for index, item in enumerate(items):
        figures.per_category[item.category] += 1
        started = time.perf_counter()
        response = send(client, csrf, session_id, item)
        figures.seconds.append(time.perf_counter() - started)
        judge(item, response, figures, index)
    figures.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def leftovers(db: Any, files_dir: Path, temp_dir: Path | None) -> list[str]:
    """Rows and files a refused upload left: every recording file has its row and each row
    its file and jobs; no stray files (partial writes) and nothing in the temporary folder."""
    from sqlalchemy import text

    rows = {str(r) for (r,) in db.execute(text("SELECT id FROM recordings")).all()}
    found: list[str] = []
    stray = db.execute(
        text("SELECT count(*) FROM jobs WHERE recording_id NOT IN (SELECT id FROM recordings)")
    ).scalar_one()
    if stray:
        found.append(f"{stray} jobs without a recording")
    without = db.execute(
        text(
            "SELECT count(*) FROM recordings r WHERE NOT EXISTS "
            "(SELECT 1 FROM jobs j WHERE j.recording_id = r.id)"
        )
    ).scalar_one()
    if without:
        found.append(f"{without} recordings without jobs")
    on_disk = {p for p in files_dir.rglob("*") if p.is_file()} if files_dir.is_dir() else set()
    recordings = {p for p in on_disk if p.parent.name == "recordings"}
    for path in recordings:
        if path.suffix != ".rec" or path.stem not in rows:
            found.append(f"file without a row: {path.name}")
    for row in rows - {p.stem for p in recordings}:
        found.append(f"row without a file: {row}")
    if temp_dir is not None:
        found += [f"temporary file left: {p.name}" for p in temp_dir.rglob("*")]
    return found


def _scratch_run(count: int, seed: int) -> Figures:
    """A throwaway appliance: a therapist, a consenting patient, one session; then the run."""
    from datetime import date

    from litestar.testing import TestClient

    from appliance.app import create_app
    from appliance.audit.service import Actor
    from appliance.auth.service import set_password
    from appliance.clinic import service as clinic
    from appliance.clinic.models import Role
    from appliance.clinic.schemas import PatientCreate, UserCreate
    from appliance.consent import service as consent
    from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
    from appliance.crypto.service import keystore_for
    from appliance.db import open_database
    from appliance.instance import initialise
    from appliance.recordings import service as sessions
    from appliance.recordings.schemas import SessionCreate
    from appliance.settings import load_settings

    items = generate(count, seed)
    actor, email, password = (
        Actor(role="cli", user_agent="soak fuzz"),
        "fuzz@soak.invalid",
        (uuid.uuid4().hex),
    )
    with tempfile.TemporaryDirectory(prefix="appliance-fuzz-") as folder:
        settings = load_settings(data_dir=Path(folder) / "var")
        initialise(settings)
        private_tmp = Path(folder) / "tmp"
        private_tmp.mkdir()
        tempfile.tempdir, os.environ["TMPDIR"] = str(private_tmp), str(private_tmp)
        try:
            with open_database(settings) as database:
                with database.session() as db:
                    user = clinic.add_user(
                        db, actor, UserCreate(email=email, name="Fuzz", role=Role.therapist)
                    )
                    set_password(db, actor, email, password)
                    patient = clinic.add_patient(
                        db,
                        keystore_for(settings),
                        actor,
                        PatientCreate(name="Fuzz Patient", therapist_email=email),
                    )
                    consent.change(
                        db,
                        actor,
                        patient.id,
                        [Purpose.recording],
                        ConsentStatus.granted,
                        ConsentMethod.paper,
                    )
                    made = sessions.add_session(
                        db,
                        actor,
                        SessionCreate(
                            patient_id=patient.id, session_date=date.today(), therapist_id=user.id
                        ),
                    )
                    db.commit()
                    session_id = str(made.id)
                with TestClient(app=create_app(settings, database)) as client:
                    login = client.post(
                        "/api/v1/auth/login", json={"email": email, "password": password}
                    )
                    figures = run_uploads(client, login.json()["csrf_token"], session_id, items)
                with database.session() as db:
                    figures.orphans = leftovers(db, settings.files_dir, private_tmp)
        finally:
            tempfile.tempdir = None
            os.environ.pop("TMPDIR", None)
    return figures


@click.command("fuzz")
@click.option("--count", default=1000, show_default=True, help="How many hostile uploads.")
@click.option("--seed", default=10, show_default=True, help="Same seed, same uploads.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def fuzz_command(count: int, seed: int, as_json: bool) -> None:
    """Send COUNT hostile uploads to both upload endpoints of a throwaway appliance: no 5xx,
    RFC 7807 refusals, no orphan rows or files; prints counts and time per upload."""
    import json

    figures = _scratch_run(count, seed)
    summary = figures.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            click.echo(f"{key}: {value}")
    for line in (figures.server_errors + figures.wrong_answers + figures.orphans)[:50]:
        click.echo(f"  {line}", err=True)
    if figures.server_errors or figures.wrong_answers or figures.orphans:
        raise SystemExit(1)
