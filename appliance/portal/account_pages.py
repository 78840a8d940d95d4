"""The portal's other pages: homework with check-off, the inbox, my consents, my data.

Beside the chat (`pages.py`), under the same rules: patients only (staff are sent to the
console), the patient is the one linked to the signed-in account and never an id from the
request, every form carries the CSRF token and answers with POST-redirect-GET, and every page
works without JavaScript (`portal.js` only saves a reload when ticking homework). Nothing
identifying goes in a URL: redirects carry at most `?saved=1` and a `#item-<uuid>` fragment,
which the browser never sends.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from sqlmodel import Field, Session, SQLModel

from appliance.auth.guards import Principal
from appliance.chat.controllers import own_patient_id
from appliance.consent import service as consent
from appliance.consent.models import Purpose
from appliance.errors import Invalid, NotFound, TooManyRequests
from appliance.messages import inbox
from appliance.portal import checks, consents, export
from appliance.portal.pages import FORM, PortalPages, elapsed, listen_href, provide_patient
from appliance.web.i18n import _, long_date
from appliance.web.pages import PageController, page, see_other
from appliance.web.security import SECURITY_HEADERS


class TickForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    done: str = Field(default="1", max_length=1)  # "1": mark done, "0": not done


class ConsentForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    decision: str = Field(default="", max_length=16)  # "give" or "withdraw"


class CsrfOnly(SQLModel):
    csrf_token: str = Field(default="", max_length=128)


@dataclass(frozen=True)
class SessionHomework:
    """The items of one session, for a heading per session."""

    session_id: uuid.UUID
    session_date: date
    items: list[checks.Item]


def by_session(items: list[checks.Item]) -> list[SessionHomework]:
    """Group items under their session, keeping the newest-session-first order."""
    groups: dict[uuid.UUID, SessionHomework] = {}
    for item in items:
        fact = item.fact
        group = groups.setdefault(
            fact.session_id, SessionHomework(fact.session_id, fact.session_date, [])
        )
        group.items.append(item)
    return list(groups.values())


class PortalAccountPages(PageController):
    path = "/portal"
    exception_handlers = PortalPages.exception_handlers
    dependencies = {"principal": Provide(provide_patient)}

    @get("/homework", sync_to_thread=True)
    def homework(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Template:
        """The approved homework of released sessions, each with a done / not done button."""
        patient_id = own_patient_id(db_session, principal)
        found = checks.items(db_session, state.keystore, principal.actor(), patient_id)
        may_ask = consent.is_granted(db_session, patient_id, Purpose.patient_chat)
        db_session.commit()
        return page(
            request,
            "portal_homework.html",
            principal,
            title=_("Your homework"),
            groups=by_session(found),
            done=sum(1 for item in found if item.done),
            total=len(found),
            may_ask=may_ask,
            long_date=long_date,
            clock=elapsed,
            listen_href=listen_href,
        )

    @post("/homework/{fact_id:uuid}", sync_to_thread=True)
    def tick(
        self,
        fact_id: FromPath[uuid.UUID],
        data: Annotated[TickForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Response[Any]:
        """Mark one item done or not done, then back to it on the list."""
        patient_id = own_patient_id(db_session, principal)
        checks.set_done(db_session, principal.actor(), patient_id, fact_id, data.done != "0")
        db_session.commit()
        return see_other(f"/portal/homework#item-{fact_id}")

    @get("/messages", sync_to_thread=True)
    def messages(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Template:
        """Approved messages sent to the patient, newest first (reading one is its own page)."""
        patient_id = own_patient_id(db_session, principal)
        found = inbox.inbox(db_session, state.keystore, principal.actor(), patient_id)
        db_session.commit()
        return page(
            request,
            "portal_inbox.html",
            principal,
            title=_("Inbox"),
            inbox=found,
            unread=sum(1 for m in found if m.read_at is None),
            zone=ZoneInfo(state.settings.clinic.timezone),
            long_date=long_date,
        )

    @get("/consents", sync_to_thread=True)
    def consents(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        saved: FromQuery[bool] = False,
    ) -> Template:
        """Each purpose in plain words, its state, one button to change it, and the history."""
        patient_id = own_patient_id(db_session, principal)
        found = consents.overview(db_session, principal.actor(), patient_id)
        db_session.commit()
        return page(
            request,
            "portal_consents.html",
            principal,
            title=_("My consents"),
            notice=_("Your choice is saved.") if saved else None,
            overview=found,
            titles={p: m.title for p, m in consents.MEANINGS.items()},
            zone=ZoneInfo(state.settings.clinic.timezone),
            long_date=long_date,
        )

    @post("/consents/{purpose:str}", sync_to_thread=True)
    def decide(
        self,
        purpose: FromPath[str],
        data: Annotated[ConsentForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Response[Any]:
        """Give or withdraw one purpose: one press, either way."""
        try:
            chosen = Purpose(purpose)
        except ValueError:
            raise NotFound("no such purpose") from None
        if data.decision not in ("give", "withdraw"):
            raise Invalid("choose to give or to withdraw consent")
        patient_id = own_patient_id(db_session, principal)
        consents.decide(db_session, principal.actor(), patient_id, chosen, data.decision == "give")
        db_session.commit()
        return see_other(f"/portal/consents?saved=1#consent-{chosen.value}")

    @get("/my-data", sync_to_thread=True)
    def my_data(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Template:
        """What the download holds and what it leaves out, and the button."""
        own_patient_id(db_session, principal)
        return self._my_data_page(request, principal)

    @post("/my-data", sync_to_thread=True, status_code=200)
    def download(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[CsrfOnly, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        """The ZIP, built in memory; too soon after the last one: the page again, with why."""
        patient_id = own_patient_id(db_session, principal)
        try:
            made = export.export(
                db_session, state.settings, state.keystore, principal.actor(), patient_id
            )
        except TooManyRequests as refused:
            template = self._my_data_page(request, principal, error=str(refused), status=429)
            template.headers["Retry-After"] = str(refused.retry_after)
            return template
        disposition = f'attachment; filename="{made.filename}"'
        return Response(
            made.content,
            status_code=200,
            media_type="application/zip",
            headers={**SECURITY_HEADERS, "Content-Disposition": disposition},
        )

    def _my_data_page(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        *,
        error: str | None = None,
        status: int = 200,
    ) -> Template:
        return page(
            request,
            "portal_my_data.html",
            principal,
            status_code=status,
            title=_("My data"),
            error=error,
        )
