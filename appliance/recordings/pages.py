"""Console: sessions (per patient and all of mine, filtered, cursor-paginated), a new session,
each session's page (pipeline progress, upload or record a recording, release for the
patient's questions) and the recording itself for the transcript's player.

Filters live in the query string and the cursor holds a position only (date and id), so the
"older sessions" link keeps the filters and never carries anything about the patient but ids.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, QueryParameter
from litestar.response import Stream, Template
from sqlmodel import Field, Session, SQLModel

from appliance.audit.service import AuditEntry, record
from appliance.auth.guards import Principal
from appliance.clinic import access
from appliance.clinic import service as clinic
from appliance.clinic.models import Role
from appliance.consent.models import Purpose
from appliance.errors import DomainError, Invalid, NotFound
from appliance.recordings import playback, service
from appliance.recordings.form_upload import FormUpload
from appliance.recordings.models import SessionStatus, TherapySession
from appliance.recordings.schemas import SessionCreate
from appliance.recordings.session_view import session_context
from appliance.web.i18n import _, lazy, long_date
from appliance.web.pages import PageController, page, see_other
from appliance.web.security import SECURITY_HEADERS

PAGE_SIZE = 25
StatusFilter = Literal["", "scheduled", "recorded", "cancelled"]
ReleasedFilter = Literal["", "yes", "no"]
NOTICES = {
    "created": lazy("Session added. Upload or record its recording below."),
    "uploaded": lazy("Recording received. Transcription has been queued."),
    "released": lazy("Released: the patient can now ask about this session."),
}


class NewSessionForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    session_date: date


@dataclass(frozen=True)
class Filters:
    """What the list is narrowed to, exactly as it came in the query string."""

    status: str = ""
    released: str = ""
    date_from: str = ""
    date_to: str = ""
    patient: str = ""

    def query(self, **more: str) -> str:
        """The query string for a link that keeps these filters (empty ones left out)."""
        pairs = {k: v for k, v in {**self.__dict__, **more}.items() if v}
        return urlencode(pairs)

    @property
    def active(self) -> bool:
        return any(self.__dict__.values())


def _day(value: str | None, label: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid(_("%(field)s is not a date (YYYY-MM-DD)") % {"field": label}) from None


class SessionPages(PageController):
    path = "/console"

    @get("/sessions", sync_to_thread=True)
    def all_sessions(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        patient: FromQuery[str | None] = None,
        status: FromQuery[StatusFilter | None] = None,
        released: FromQuery[ReleasedFilter | None] = None,
        date_from: FromQuery[str | None] = None,
        date_to: FromQuery[str | None] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
    ) -> Template:
        """Every session of the patients I may see, newest first; filter by patient."""
        principal.require(*access.STAFF)
        patient_id: uuid.UUID | None = None
        if patient:
            try:
                patient_id = uuid.UUID(patient)
            except ValueError:
                raise Invalid(_("unknown patient")) from None
        patients = clinic.list_patients(
            db_session, state.keystore, principal.actor(), access.visible_patient_ids(principal)
        )
        db_session.commit()
        if patient_id is not None and patient_id not in {p.id for p in patients}:
            access.require_visible(db_session, principal, patient_id, "session.list")
        filters = Filters(
            status or "", released or "", date_from or "", date_to or "", patient or ""
        )
        return self._list(
            request, principal, db_session, filters, cursor, patient_id, patients=patients
        )

    @get("/patients/{patient_id:uuid}/sessions", sync_to_thread=True)
    def sessions(
        self,
        request: Request[Any, Any, Any],
        patient_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        status: FromQuery[StatusFilter | None] = None,
        released: FromQuery[ReleasedFilter | None] = None,
        date_from: FromQuery[str | None] = None,
        date_to: FromQuery[str | None] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
    ) -> Template:
        principal.require(*access.STAFF)
        patient = access.read_visible_patient(
            db_session, state.keystore, principal, patient_id, "session.list"
        )
        filters = Filters(status or "", released or "", date_from or "", date_to or "")
        today = datetime.now(ZoneInfo(state.settings.clinic.timezone)).date()
        return self._list(
            request,
            principal,
            db_session,
            filters,
            cursor,
            patient_id,
            patient=patient,
            today=today,
        )

    def _list(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: Session,
        filters: Filters,
        cursor: str | None,
        patient_id: uuid.UUID | None,
        **context: Any,
    ) -> Template:
        listed = service.list_sessions(
            db_session,
            access.visible_patient_ids(principal),
            patient_id=patient_id,
            date_from=_day(filters.date_from, _("From")),
            date_to=_day(filters.date_to, _("To")),
            status=filters.status or None,
            released={"yes": True, "no": False}.get(filters.released),
            cursor=cursor,
            limit=PAGE_SIZE,
        )
        patient = context.get("patient")
        return page(
            request,
            "sessions.html",
            principal,
            title=_("Sessions of %(name)s") % {"name": patient.name} if patient else _("Sessions"),
            listed=listed,
            filters=filters,
            statuses=[s.value for s in SessionStatus],
            names={p.id: p.name for p in context.get("patients", [])},
            paged=cursor is not None,
            **context,
        )

    @post("/patients/{patient_id:uuid}/sessions", sync_to_thread=True)
    def add(
        self,
        patient_id: FromPath[uuid.UUID],
        data: Annotated[NewSessionForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Response[Any]:
        """The form twin of `appliance sessions add` (the signed-in therapist's session)."""
        principal.require(*access.STAFF)
        access.require_visible(db_session, principal, patient_id, "session.create")
        made = service.add_session(
            db_session,
            principal.actor(),
            SessionCreate(patient_id=patient_id, session_date=data.session_date),
        )
        db_session.commit()
        return see_other(f"/console/sessions/{made.id}?done=created")

    @get("/sessions/{session_id:uuid}", sync_to_thread=True)
    def progress(
        self,
        request: Request[Any, Any, Any],
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        done: FromQuery[str | None] = None,
    ) -> Template:
        """Progress (the facts of GET /api/v1/sessions/{id}/status), upload, record, release."""
        principal.require(*access.STAFF)
        visible = access.visible_patient_ids(principal)
        row = service.get_session(db_session, visible, session_id, principal.actor())
        return session_page(request, principal, db_session, row, done=done or "")

    @post("/sessions/{session_id:uuid}/recording", request_max_body_size=None)
    async def upload(
        self,
        request: Request[Any, Any, Any],
        session_id: FromPath[uuid.UUID],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        """The upload form without JavaScript (see form_upload); errors show on the page."""
        upload = FormUpload(request, db_session, state, session_id)
        try:
            await upload.receive()
        except DomainError as exc:
            if upload.principal is None or upload.row is None:
                raise
            return session_page(
                request,
                upload.principal,
                db_session,
                upload.row,
                error=_("The recording was not stored: %(reason)s") % {"reason": str(exc)},
                status_code=exc.status_code,
            )
        return see_other(f"/console/sessions/{session_id}?done=uploaded")

    @post("/sessions/{session_id:uuid}/release", sync_to_thread=True)
    def release(
        self,
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Response[Any]:
        """The button twin of `appliance sessions release` (a therapist of the patient)."""
        principal.require(Role.therapist)
        visible = access.visible_patient_ids(principal)
        row = service.get_session(
            db_session, visible, session_id, principal.actor(), "session.release"
        )
        service.release(db_session, principal.actor(), row)
        db_session.commit()
        return see_other(f"/console/sessions/{session_id}?done=released")

    @get("/sessions/{session_id:uuid}/recordings/{recording_id:uuid}/audio", sync_to_thread=True)
    def audio(
        self,
        request: Request[Any, Any, Any],
        session_id: FromPath[uuid.UUID],
        recording_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        """The recording as uploaded, for staff who may see the patient; byte ranges (206) so
        the player can seek. Audited once per play (see recordings.playback)."""
        principal.require(*access.STAFF)
        try:
            row = service.get_session(db_session, access.visible_patient_ids(principal), session_id)
            recording = playback.recording_of(db_session, row, recording_id)
        except NotFound:
            known = db_session.get(TherapySession, session_id)
            record(
                db_session,
                principal.actor(),
                AuditEntry(
                    "recording.play",
                    "denied",
                    "recording",
                    str(recording_id),
                    known.patient_id if known else None,
                ),
            )
            db_session.commit()
            raise
        size = recording.size_bytes
        headers = {**SECURITY_HEADERS, "accept-ranges": "bytes"}
        try:
            wanted = playback.parse_range(request.headers.get("range"), size)
        except playback.RangeNotSatisfiable as exc:
            return Response(b"", status_code=416, headers={**headers, "content-range": str(exc)})
        if playback.starts_a_play(wanted):
            record(
                db_session,
                principal.actor(),
                AuditEntry(
                    "recording.play",
                    "success",
                    "recording",
                    str(recording.id),
                    recording.patient_id,
                    details={"session_id": str(row.id)},
                ),
            )
            db_session.commit()
        start, end = wanted if wanted is not None else (0, size - 1)
        if wanted is not None:
            headers["content-range"] = f"bytes {start}-{end}/{size}"
        headers["content-length"] = str(end - start + 1)
        part = playback.Part(recording, 0.0)
        return Stream(
            playback.plain_bytes(state.settings, state.keystore, recording, start, end),
            media_type=part.media_type,
            status_code=206 if wanted is not None else 200,
            headers=headers,
        )


def session_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    db_session: Session,
    row: TherapySession,
    *,
    done: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Template:
    """The session page; its wording (stages, consents, workers) comes from session_view."""
    context = session_context(db_session, principal, row)
    missing = {m.purpose for m in context["missing_consents"]}
    notice = NOTICES.get(done)
    if done == "uploaded" and Purpose.transcription.value in missing:
        notice = _(
            "Recording received. It is stored, but it will not be transcribed until the "
            "patient gives consent for transcription."
        )
    patient = clinic.get_patient(
        db_session, request.app.state.keystore, principal.actor(), row.patient_id
    )
    db_session.commit()  # the audited read of the patient's name
    heading = _("%(name)s — session of %(day)s") % {
        "name": patient.name,
        "day": long_date(row.session_date),
    }
    return page(
        request,
        "session.html",
        principal,
        title=heading,
        heading=heading,
        session=row,
        max_upload_mb=request.app.state.settings.recordings.max_upload_mb,
        notice=notice,
        error=error,
        status_code=status_code,
        **context,
    )
