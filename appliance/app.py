"""The web application factory. Settings come in explicitly; nothing is read from globals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from sqlmodel import Session

from appliance import __version__
from appliance.audit.pages import AuditPages
from appliance.auth.apikey_pages import ApiKeyPages
from appliance.auth.controllers import AuthController
from appliance.auth.guards import refuse_cross_site_writes
from appliance.auth.invitation_pages import InvitationPages
from appliance.auth.pages import SignInPages
from appliance.chat.controllers import AlertController, ChatController
from appliance.chat.pages import AlertPages
from appliance.clinic.admin_pages import AdminPages
from appliance.clinic.controllers import PatientController
from appliance.clinic.pages import PatientPages
from appliance.clinic.patient_admin_pages import PatientAdminPages
from appliance.consent.controllers import ConsentController
from appliance.consent.pages import ConsentPages
from appliance.crypto.pages import KeyPages
from appliance.crypto.service import keystore_for
from appliance.db import Database, open_database
from appliance.jobs.controllers import JobController
from appliance.jobs.pages import JobPages
from appliance.jobs.tasks import JobQueue
from appliance.messages.controllers import MessageController
from appliance.messages.pages import MessagePages, PortalMessagePages
from appliance.modelfiles.pages import ModelPages
from appliance.observability.controllers import MetricsController, RequestMetricsMiddleware
from appliance.observability.metrics import AppMetrics
from appliance.observability.pages import ErrorPages
from appliance.pipeline.controllers import TranscriptController, VoiceController
from appliance.pipeline.pages import TranscriptPages, VoicePages
from appliance.portal.account_pages import PortalAccountPages
from appliance.portal.join import JoinPages
from appliance.portal.pages import PortalPages
from appliance.portal.security import SecurityPages
from appliance.recordings.controllers import SessionController
from appliance.recordings.pages import SessionPages
from appliance.recordings.partials import sweep_partial_uploads
from appliance.reports.controllers import ProfileController, ReportController, RiskFlagController
from appliance.reports.pages import ReportPages
from appliance.settings import Settings, read_secret_file
from appliance.web.context import DB_SESSION_KEY, RequestContextMiddleware
from appliance.web.errors import EXCEPTION_HANDLERS
from appliance.web.health import HealthController
from appliance.web.language import LanguagePages, LocaleMiddleware
from appliance.web.pages import static_files, template_config
from appliance.web.welcome import WelcomePage


def create_app(settings: Settings, database: Database | None = None) -> Litestar:
    """Build the app. Pass `database` to share an open one (tests); otherwise the app opens
    the configured database at startup and releases it (and the embedded server) at shutdown."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        with ExitStack() as stack:
            if database is None:
                app.state.database = stack.enter_context(open_database(settings))
            app.state.server_secret = read_secret_file(settings.secret_key_path)
            sweep_partial_uploads(settings.files_dir)  # what a killed upload left behind
            yield

    metrics = AppMetrics(settings)  # this app's own registry, never the global one
    return Litestar(
        route_handlers=[
            HealthController,
            MetricsController,
            AuthController,
            PatientController,
            ConsentController,
            SessionController,
            JobController,
            TranscriptController,
            VoiceController,
            ReportController,
            RiskFlagController,
            ProfileController,
            ChatController,
            AlertController,
            MessageController,
            SignInPages,
            PatientPages,
            AdminPages,
            PatientAdminPages,
            ApiKeyPages,
            InvitationPages,
            AlertPages,
            ConsentPages,
            SessionPages,
            JobPages,
            ModelPages,
            KeyPages,
            AuditPages,
            TranscriptPages,
            VoicePages,
            ReportPages,
            PortalPages,
            JoinPages,
            SecurityPages,
            PortalAccountPages,
            MessagePages,
            PortalMessagePages,
            ErrorPages,
            WelcomePage,
            LanguagePages,
            static_files(),
        ],
        template_config=template_config(),
        dependencies={"db_session": Provide(_db_session, sync_to_thread=False)},  # no I/O
        middleware=[
            RequestContextMiddleware(),
            LocaleMiddleware(),
            RequestMetricsMiddleware(metrics),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=refuse_cross_site_writes,  # CSRF defence in depth, beside the token
        lifespan=[lifespan],
        state=State(
            {
                "settings": settings,
                "database": database,
                "keystore": keystore_for(settings),
                "queue": JobQueue(settings),
                "metrics": metrics,
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


def _db_session(request: Request[Any, Any, Any], state: State) -> Session:
    """One session per request, closed by the request-context middleware once the response
    is sent. Not a generator dependency: Litestar does not close those when a later
    dependency (the principal: 401, 403) fails, which would leak a connection."""
    database: Any = state.database
    session: Session = database.session()
    request.scope.setdefault("state", {})[DB_SESSION_KEY] = session
    return session
