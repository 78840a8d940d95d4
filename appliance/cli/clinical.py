"""Clinical commands: consent and therapy sessions, acting as a named staff member (--by)."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import click

from appliance.audit.service import cli_actor
from appliance.auth.guards import cli_principal
from appliance.cli import (
    data_dir_option,
    data_session,
    emit,
    json_option,
    main,
    one_line_errors,
    settings_for,
)
from appliance.clinic import access
from appliance.clinic.models import Role
from appliance.consent import service as consent
from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
from appliance.crypto.service import keystore_for
from appliance.db import open_database
from appliance.errors import Invalid, NotFound
from appliance.instance import require_initialised
from appliance.jobs.models import JobState
from appliance.recordings import ingest
from appliance.recordings import service as sessions
from appliance.recordings.models import TherapySession
from appliance.recordings.schemas import SessionCreate, UploadAccepted


def parse_purposes(value: str) -> list[Purpose]:
    try:
        return [Purpose(part.strip()) for part in value.split(",") if part.strip()]
    except ValueError:
        known = ", ".join(p.value for p in Purpose)
        raise click.BadParameter(f"purposes are {known}") from None


@main.group("consent")
def consent_group() -> None:
    """The consent ledger (every change is a new, immutable row)."""


def _consent_command(status: ConsentStatus) -> click.Command:
    @click.option("--patient", "patient_id", type=click.UUID, required=True)
    @click.option("--purpose", "purposes", required=True, help="One or more, comma-separated.")
    @click.option("--by", "by_email", required=True, help="The staff member recording it.")
    @click.option("--method", type=click.Choice(["in_person", "paper"]), default="in_person")
    @click.option(
        "--evidence",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        default=None,
        help="A scanned form; stored encrypted with the patient's key.",
    )
    @data_dir_option
    @json_option
    @one_line_errors
    def command(
        patient_id: uuid.UUID,
        purposes: str,
        by_email: str,
        method: str,
        evidence: Path | None,
        data_dir: Path | None,
        as_json: bool,
    ) -> None:
        wanted = parse_purposes(purposes)
        with data_session(data_dir) as (settings, session):
            principal = cli_principal(session, by_email)
            principal.require(Role.admin, Role.therapist)
            access.require_visible(session, principal, patient_id, f"consent.{status.value}")
            rows = consent.change(
                session,
                principal.actor(),
                patient_id,
                wanted,
                status,
                ConsentMethod(method),
                evidence=evidence,
                store=keystore_for(settings),
                files_root=settings.files_dir,
            )
        emit(
            [row.model_dump(mode="json") for row in rows],
            as_json,
            f"{status.value.capitalize()}: {', '.join(p.value for p in wanted)}.",
        )

    verb = "gave" if status == ConsentStatus.granted else "withdrew"
    command.__doc__ = f"Record that the patient {verb} consent for the given purposes."
    return click.command()(command)


consent_group.add_command(_consent_command(ConsentStatus.granted), "grant")
consent_group.add_command(_consent_command(ConsentStatus.revoked), "revoke")


@main.group("sessions")
def sessions_group() -> None:
    """Therapy sessions (appointments)."""


@sessions_group.command("add")
@click.option("--patient", "patient_id", type=click.UUID, required=True)
@click.option("--therapist", "therapist_email", required=True)
@click.option("--date", "session_date", type=click.DateTime(formats=["%Y-%m-%d"]), required=True)
@data_dir_option
@json_option
@one_line_errors
def sessions_add(
    patient_id: uuid.UUID,
    therapist_email: str,
    session_date: object,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Add a session for a patient with one of their therapists. Prints the session id."""
    day: date = session_date.date()  # type: ignore[attr-defined]
    with data_session(data_dir) as (_, session):
        therapist = cli_principal(session, therapist_email)
        if therapist.role != Role.therapist:
            raise Invalid("--therapist must name a therapist")
        created = sessions.add_session(
            session,
            therapist.actor(),
            SessionCreate(patient_id=patient_id, session_date=day, therapist_id=therapist.user_id),
        )
    emit(created.model_dump(mode="json"), as_json, str(created.id))


@sessions_group.command("release")
@click.option("--session", "session_id", type=click.UUID, required=True)
@click.option("--by", "by_email", required=True, help="A therapist of the session's patient.")
@data_dir_option
@json_option
@one_line_errors
def sessions_release(
    session_id: uuid.UUID, by_email: str, data_dir: Path | None, as_json: bool
) -> None:
    """Let the patient ask about this session."""
    with data_session(data_dir) as (_, session):
        principal = cli_principal(session, by_email)
        row = sessions.get_session(session, access.visible_patient_ids(principal), session_id)
        released = sessions.release(session, principal.actor(), row)
    emit(released.model_dump(mode="json"), as_json, f"Released session {released.id}.")


@main.command("ingest")
@click.option("--session", "session_id", type=click.UUID, required=True)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--idempotency-key", default=None, help="Makes a retried ingest a no-op.")
@click.option(
    "--wait",
    is_flag=True,
    help="Return when every stage has finished (exit 1 if one failed; stages the patient has "
    "not consented to are cancelled, not failed); runs them here when no worker is running.",
)
@data_dir_option
@json_option
@one_line_errors
def ingest_command(
    session_id: uuid.UUID,
    file: Path,
    idempotency_key: str | None,
    wait: bool,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Ingest a recording for a session: the same path as the upload endpoint."""
    from appliance.jobs.runner import wait_for_recording
    from appliance.jobs.tasks import JobQueue
    from appliance.pipeline.stages import BACKGROUND

    settings = settings_for(data_dir)
    require_initialised(settings)
    from appliance.recordings.partials import require_space

    require_space(settings, file.stat().st_size)  # a full disk: one line, nothing stored
    with open_database(settings) as database:
        with database.session() as session:
            row = session.get(TherapySession, session_id)
            if row is None:
                raise NotFound("no such session")
            prepared = ingest.prepare(
                session,
                settings,
                keystore_for(settings),
                cli_actor(),
                row,
                file.name,
                idempotency_key,
            )
            if not isinstance(prepared, ingest.Accepted):
                try:
                    with file.open("rb") as handle:
                        while piece := handle.read(1024 * 1024):
                            prepared.write(piece)
                except BaseException:
                    prepared.abort()
                    raise
                prepared = prepared.finish(session)
                JobQueue(settings).wake()
        payload = UploadAccepted.of(prepared).model_dump(mode="json")
        if not wait:
            emit({"id": payload["recording_id"], **payload}, as_json, str(prepared.recording_id))
            return
        finished = wait_for_recording(settings, database, prepared.recording_id)
    payload["jobs"] = [
        {"id": str(j.id), "stage": j.stage, "state": j.state, "last_error": j.last_error}
        for j in finished
    ]
    # Stages cancelled for want of consent are the patient's choice, not a failure; the
    # report is background work a worker finishes once `appliance llm` runs.
    failed = [
        j
        for j in finished
        if j.state != JobState.succeeded.value
        and j.stage not in BACKGROUND
        and not (j.state == JobState.cancelled.value and "consent" in (j.last_error or ""))
    ]
    lines = [f"  {j.stage}: {j.state} {j.last_error or ''}".rstrip() for j in finished]
    human = "\n".join([str(prepared.recording_id), *lines])
    emit({"id": payload["recording_id"], **payload}, as_json, human)
    if failed:
        raise click.ClickException(
            "stages did not finish: " + ", ".join(f"{j.stage} {j.state}" for j in failed)
        )
