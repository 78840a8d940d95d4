"""The appliance's front door: someone who types only the server's address lands on a page
that sends patients to the portal and staff to the console, instead of a bare 404."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.response import Template

from appliance.web.i18n import N_
from appliance.web.pages import page


class WelcomePage(Controller):
    include_in_schema = False

    @get("/", sync_to_thread=True)
    def welcome(self, request: Request[Any, Any, Any]) -> Template:
        return page(request, "welcome.html", None, title=N_("Welcome"))
