"""Console: the open crisis alerts of the signed-in staff member's patients, each with an
Acknowledge button (a plain form: POST-redirect-GET, CSRF in a hidden field, no JavaScript).

Times are shown in the clinic's time zone: a therapist reads "14:05", not UTC.
"""

from __future__ import annotations

import uuid
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from sqlmodel import Session

from appliance.auth.guards import Principal
from appliance.chat import alerts
from appliance.clinic import access
from appliance.web.i18n import N_, _
from appliance.web.pages import PageController, page, see_other

NOTICES = {  # marked here, translated when shown
    "acknowledged": N_("Alert acknowledged."),
    "already": N_("That alert had already been acknowledged."),
}


class AlertPages(PageController):
    path = "/console/alerts"

    @get("/", sync_to_thread=True)
    def open_alerts(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        done: FromQuery[str | None] = None,
    ) -> Template:
        principal.require(*access.STAFF)
        found = alerts.open_alerts(db_session, state.keystore, principal)
        db_session.commit()
        return page(
            request,
            "alerts.html",
            principal,
            title=_("Crisis alerts"),
            alerts=found,
            zone=ZoneInfo(state.settings.clinic.timezone),
            open_alerts=len(found),  # the badge agrees with the table it sits above
            notice=_(NOTICES[done]) if done is not None and done in NOTICES else None,
        )

    @post("/{alert_id:uuid}/acknowledge", sync_to_thread=True)
    def acknowledge(
        self,
        alert_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Response[Any]:
        principal.require(*access.STAFF)
        done = alerts.acknowledge(db_session, principal, alert_id)
        db_session.commit()
        return see_other(
            "/console/alerts?done=" + ("already" if done.already_acknowledged else "acknowledged")
        )
