"""Console page for administrators: the errors recorded on this box, newest first."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template

from appliance.auth.guards import Principal
from appliance.clinic.models import Role
from appliance.observability.errors import errors_dir, read_errors
from appliance.web.i18n import _
from appliance.web.pages import PageController, page

PAGE_SIZE = 25


class ErrorPages(PageController):
    path = "/console/errors"

    @get("/", sync_to_thread=True)
    def errors(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        state: State,
        page_number: Annotated[int, QueryParameter(name="page", ge=1, le=100_000)] = 1,
    ) -> Template:
        principal.require(Role.admin)
        found, total = read_errors(
            errors_dir(state.settings), offset=(page_number - 1) * PAGE_SIZE, limit=PAGE_SIZE
        )
        pages = max(1, -(-total // PAGE_SIZE))
        return page(
            request,
            "errors.html",
            principal,
            title=_("Errors"),
            errors=found,
            total=total,
            page_number=page_number,
            pages=pages,
        )
