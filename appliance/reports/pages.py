"""Console: a session's report beside its transcript (decide risk flags, edit, approve and
release, regenerate), the therapist's risk-flag inbox, and the writing profile.

Plain forms without JavaScript: CSRF in a hidden field, POST-redirect-GET. A refused action
(an open flag, a missing reason, a stale version) shows the report page again with the reason,
so nothing typed elsewhere on the page is lost from view. The "clinical-only" checkboxes sit
beside the transcript's lines and belong to the approve form through their `form` attribute.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import zip_longest
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import anyio
from litestar import Request, Response, get, post
from litestar.datastructures import FormMultiDict, State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Template
from pydantic import ValidationError
from sqlmodel import Field, Session, SQLModel, select

from appliance.auth.guards import Principal
from appliance.errors import DomainError, Invalid, describe_validation_error
from appliance.pipeline import exports, transcripts
from appliance.pipeline.schemas import SegmentPublic
from appliance.recordings.models import TherapySession
from appliance.reports.controllers import (
    approve_report,
    decide_flag,
    drafting,
    edit_report,
    inbox,
    load,
    own_profile,
    regenerate_report,
    report_session,
    save_profile,
)
from appliance.reports.document import NoteFormat
from appliance.reports.flags import MAX_REASON
from appliance.reports.models import WithheldSpan
from appliance.reports.schemas import (
    MAX_HOMEWORK,
    ApproveRequest,
    FlagDecision,
    HomeworkIn,
    ProfileUpdate,
    ReportEdit,
    Span,
    StatementIn,
    StatementPublic,
)
from appliance.web.i18n import N_, _
from appliance.web.pages import PageController, page, see_other

# Marked here, translated when shown: in the language of the request that shows them.
NOTICES = {
    "acknowledged": N_("Risk flag acknowledged."),
    "dismissed": N_("Risk flag dismissed."),
    "edited": N_("Your edit is saved as a new version."),
    "approved": N_("Report approved."),
    "released": N_("Report approved; the patient can now ask about this session."),
    "regenerating": N_("A new draft is on its way; this page shows it once it is written."),
    "saved": N_("Your writing profile is saved. New drafts follow it."),
}
FORMATS = {
    NoteFormat.soap.value: "SOAP",
    NoteFormat.dap.value: "DAP",
    NoteFormat.birp.value: "BIRP",
    NoteFormat.summary.value: N_("Free summary"),
}
BLANK_HOMEWORK_ROWS = 3


def notice(done: str | None) -> str | None:
    """The notice a `?done=` key names, in the request's language (unknown keys: none)."""
    return _(NOTICES[done]) if done is not None and done in NOTICES else None


def clock(seconds: float) -> str:
    return f"{int(seconds) // 60:02d}:{int(seconds) % 60:02d}"


def text_of(statements: Sequence[StatementPublic]) -> str:
    """A section as the edit form's textarea shows it: one statement per line."""
    return "\n".join(s.text for s in statements)


def anchor(seconds: float) -> str:
    """The id of the transcript line a source links to (`#t-<whole seconds>`)."""
    return f"t-{int(seconds)}"


@dataclass(frozen=True)
class Line:
    """A transcript line on the report page."""

    segment: SegmentPublic
    anchor: str | None  # the first line starting in a second carries that second's id
    span: str  # the withhold checkbox's value, "start:end"
    withheld: bool  # already marked clinical-only


def _lines(db: Session, row: TherapySession, segments: list[SegmentPublic]) -> list[Line]:
    spans = [
        (w.start_seconds, w.end_seconds)
        for w in db.exec(select(WithheldSpan).where(WithheldSpan.session_id == row.id))
    ]
    seen: set[str] = set()
    found = []
    for seg in segments:
        mark = anchor(seg.start)
        found.append(
            Line(
                seg,
                None if mark in seen else mark,
                f"{seg.start:.3f}:{seg.end:.3f}",
                any(start < seg.end and end > seg.start for start, end in spans),
            )
        )
        seen.add(mark)
    return found


def render(
    request: Request[Any, Any, Any],
    db: Session,
    state: State,
    principal: Principal,
    session_id: uuid.UUID,
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Template:
    """The report page: flags, the note's sections, the forms, and the transcript."""
    row = report_session(db, principal, session_id, "report.read")
    loaded = load(db, state.keystore, principal, row)
    report = loaded.public() if loaded.chosen is not None else None
    waiting = None if report is not None else drafting(db, row)
    try:
        transcript = transcripts.read(db, state.keystore, principal.actor(), row)
        segments = getattr(transcript, "segments", None)
        unavailable = None if segments is not None else _("The transcript is still being made.")
    except (DomainError, HTTPException) as exc:
        segments = None
        unavailable = _("The transcript is not available: %(reason)s.") % {"reason": _(str(exc))}
    lines = _lines(db, row, segments or [])
    db.commit()
    homework_rows = list(report.homework) if report is not None else []
    return page(
        request,
        "report.html",
        principal,
        status_code=status_code,
        title=_("Report · session of %(date)s") % {"date": row.session_date.isoformat()},
        wide=True,
        session=row,
        report=report,
        waiting=_(waiting) if waiting else waiting,
        open_flags=[f for f in report.risk_flags if f.status == "open"] if report else [],
        decided_flags=[f for f in report.risk_flags if f.status != "open"] if report else [],
        lines=lines,
        transcript_unavailable=unavailable,
        names=exports.NAMES,
        formats={key: _(name) for key, name in FORMATS.items()},
        text_of=text_of,
        homework_rows=homework_rows,
        blank_rows=max(0, min(BLANK_HOMEWORK_ROWS, MAX_HOMEWORK - len(homework_rows))),
        clock=clock,
        anchor=anchor,
        zone=ZoneInfo(state.settings.clinic.timezone),
        notice=notice,
        error=error,
    )


def _edit(form: FormMultiDict) -> ReportEdit:
    def lines(name: str) -> list[StatementIn | str]:
        return [line for line in str(form.get(name, "")).splitlines() if line.strip()]

    rows = zip_longest(
        form.getall("homework_what", []),
        form.getall("homework_how_often", []),
        form.getall("homework_due", []),
        fillvalue="",
    )
    try:
        return ReportEdit(
            based_on=int(str(form.get("based_on", ""))),
            summary=lines("summary"),
            key_points=lines("key_points"),
            interventions=lines("interventions"),
            plan=lines("plan"),
            homework=[
                HomeworkIn(what=what, how_often=how or None, due=due or None)
                for what, how, due in rows
                if str(what).strip()
            ],
            note_format=NoteFormat(str(form["note_format"])) if form.get("note_format") else None,
        )
    except ValueError as exc:  # pydantic's ValidationError too
        if isinstance(exc, ValidationError):
            raise Invalid(describe_validation_error(exc, "the edit is not valid")) from None
        raise Invalid("the form is incomplete; reload the page and try again") from None


def _approval(form: FormMultiDict) -> ApproveRequest:
    spans = []
    try:
        for value in form.getall("withhold", []):
            start, end = str(value).split(":", 1)
            spans.append(Span(start=float(start), end=float(end)))
        return ApproveRequest(
            version=int(str(form.get("version", ""))),
            release=form.get("release") == "yes",
            withhold=spans,
        )
    except ValueError:
        raise Invalid("the form is incomplete; reload the page and try again") from None


def _act(
    request: Request[Any, Any, Any],
    db: Session,
    state: State,
    principal: Principal,
    session_id: uuid.UUID,
    action: Callable[[], str],
) -> Response[Any]:
    """Run `action` (it returns the `done` key); a refusal re-renders the page with why. Not
    found stays an error page: there is no report page to show."""
    try:
        done = action()
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        db.rollback()
        return render(
            request,
            db,
            state,
            principal,
            session_id,
            error=_(str(exc)),
            status_code=exc.status_code,
        )
    return see_other(f"/console/sessions/{session_id}/report?done={done}")


class FlagForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    decision: Literal["acknowledged", "dismissed"]
    reason: str = Field(default="", max_length=MAX_REASON)


class ProfileForm(ProfileUpdate):
    csrf_token: str = Field(default="", max_length=128)


class ReportPages(PageController):
    path = "/console"

    @get("/sessions/{session_id:uuid}/report", sync_to_thread=True)
    def show(
        self,
        request: Request[Any, Any, Any],
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        done: FromQuery[str | None] = None,
    ) -> Template:
        return render(request, db_session, state, principal, session_id, notice=notice(done))

    @post("/sessions/{session_id:uuid}/report/flags/{flag_id:uuid}", sync_to_thread=True)
    def decide(
        self,
        request: Request[Any, Any, Any],
        session_id: FromPath[uuid.UUID],
        flag_id: FromPath[uuid.UUID],
        data: Annotated[FlagForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        def action() -> str:
            report_session(db_session, principal, session_id, "risk_flag.decide")
            if not data.reason.strip():
                raise Invalid("give a reason for the decision")
            decision = FlagDecision(decision=data.decision, reason=data.reason)
            decide_flag(db_session, state.keystore, principal, flag_id, decision)
            return data.decision

        return _act(request, db_session, state, principal, session_id, action)

    @post("/sessions/{session_id:uuid}/report/edit")
    async def edit(
        self,
        request: Request[Any, Any, Any],
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        form = await request.form()

        def action() -> str:
            edit_report(db_session, state.keystore, principal, session_id, _edit(form))
            return "edited"

        act = partial(_act, request, db_session, state, principal, session_id, action)
        return await anyio.to_thread.run_sync(act)

    @post("/sessions/{session_id:uuid}/report/approve")
    async def approve(
        self,
        request: Request[Any, Any, Any],
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        form = await request.form()

        def action() -> str:
            data = _approval(form)
            approve_report(db_session, state.keystore, principal, session_id, data)
            return "released" if data.release else "approved"

        act = partial(_act, request, db_session, state, principal, session_id, action)
        return await anyio.to_thread.run_sync(act)

    @post("/sessions/{session_id:uuid}/report/regenerate", sync_to_thread=True)
    def regenerate(
        self,
        request: Request[Any, Any, Any],
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        def action() -> str:
            regenerate_report(db_session, principal, session_id)
            state.queue.wake()
            return "regenerating"

        return _act(request, db_session, state, principal, session_id, action)

    @get("/risk-flags", sync_to_thread=True)
    def risk_flags(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Template:
        found = inbox(db_session, state.keystore, principal)
        return page(
            request,
            "risk_flags.html",
            principal,
            title=_("Risk flags"),
            flags=found,
            zone=ZoneInfo(state.settings.clinic.timezone),
            clock=clock,
        )

    @get("/profile", sync_to_thread=True)
    def profile(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        done: FromQuery[str | None] = None,
    ) -> Template:
        return page(
            request,
            "profile.html",
            principal,
            title=_("My writing profile"),
            profile=own_profile(db_session, principal),
            notice=notice(done),
        )

    @post("/profile", sync_to_thread=True)
    def update_profile(
        self,
        data: Annotated[ProfileForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Response[Any]:
        save_profile(
            db_session,
            principal,
            ProfileUpdate.model_validate(data.model_dump(exclude={"csrf_token"})),
        )
        return see_other("/console/profile?done=saved")
