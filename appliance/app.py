"""The web application factory. Settings come in explicitly; nothing is read from globals."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from sqlmodel import Session

from appliance import __version__
from appliance.auth.controllers import AuthController
from appliance.clinic.controllers import PatientController
from appliance.consent.controllers import ConsentController
from appliance.crypto.service import keystore_for
from appliance.db import Database, open_database
from appliance.jobs.controllers import JobController
from appliance.jobs.tasks import JobQueue
from appliance.recordings.controllers import SessionController
from appliance.settings import Settings, read_secret_file
from appliance.web.context import RequestContextMiddleware
from appliance.web.errors import EXCEPTION_HANDLERS
from appliance.web.health import HealthController


def create_app(settings: Settings, database: Database | None = None) -> Litestar:
    """Build the app. Pass `database` to share an open one (tests); otherwise the app opens
    the configured database at startup and releases it (and the embedded server) at shutdown."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        with ExitStack() as stack:
            if database is None:
                app.state.database = stack.enter_context(open_database(settings))
            app.state.server_secret = read_secret_file(settings.secret_key_path)
            yield

    return Litestar(
        route_handlers=[
            HealthController,
            AuthController,
            PatientController,
            ConsentController,
            SessionController,
            JobController,
        ],
        dependencies={"db_session": Provide(_db_session)},
        middleware=[RequestContextMiddleware()],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        state=State(
            {
                "settings": settings,
                "database": database,
                "keystore": keystore_for(settings),
                "queue": JobQueue(settings),
            }
        ),
        openapi_config=OpenAPIConfig(
            title="Clinic appliance API",
            version=__version__,
            path="/schema",
            # JSON only: the HTML renderers load scripts from CDNs, and nothing leaves the LAN.
            render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"])],
        ),
        # Logging is configured once per process by the CLI (JSON, PHI-safe); Litestar's
        # default config would replace those handlers at startup.
        logging_config=None,
        debug=settings.debug,
    )


def _db_session(state: State) -> Iterator[Session]:
    database: Any = state.database
    with database.session() as session:
        yield session
