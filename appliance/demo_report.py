"""The demo's report step: the `report` job drafts the session's report with the local model,
and the therapist reviews it, decides any risk flag and approves it, releasing the session,
so that the approved homework becomes the patient's homework list and the chat's first facts.

The therapist acts through the same service functions the console's approve form calls.
"""

from __future__ import annotations

import time
import uuid

from appliance.auth.guards import cli_principal
from appliance.crypto.service import keystore_for
from appliance.db import open_database
from appliance.jobs.runner import drain, worker_name
from appliance.pipeline.exports import minute_clock
from appliance.pipeline.stages import pipeline
from appliance.recordings.models import TherapySession
from appliance.reports import flags, service
from appliance.reports.document import finding_text, homework_text
from appliance.reports.models import FlagStatus, ReportStatus
from appliance.settings import Settings


def with_llm(settings: Settings, base: str) -> Settings:
    """The settings of a process that talks to the `appliance llm` listening at `base`."""
    llm = settings.llm.model_copy(update={"port": int(base.rsplit(":", 1)[1])})
    return settings.model_copy(update={"llm": llm})


def draft_and_approve(
    settings: Settings, recording_id: uuid.UUID, session_id: uuid.UUID, therapist_email: str
) -> list[str]:
    """Run the recording's report job (the LLM service must be up at `settings.llm`), show
    the draft, then approve it as the therapist and release the session."""
    store = keystore_for(settings)
    with open_database(settings) as database:
        started = time.monotonic()
        drain(database, settings, store, worker_name(), pipeline(), recording_id=recording_id)
        took = time.monotonic() - started
        with database.session() as session:
            therapist = cli_principal(session, therapist_email)
            actor = therapist.actor()
            row = session.get(TherapySession, session_id)
            if row is None:
                raise RuntimeError("the demo session is gone")
            found = service.current(service.versions(session, store, actor, row))
            if found is None:
                raise RuntimeError("the report job did not draft a report; see `appliance jobs`")
            lines = [
                f"version {found.version} drafted by {found.model_id} in {took:.1f} s "
                f"(prompt {found.prompt_hash and found.prompt_hash[:12]}); "
                f"{found.note_format.value.upper()} note:",
                f"  summary: {found.report.summary_text() or '(none)'}",
            ]
            for item in found.report.homework:
                at = f" [{minute_clock(item.sources[0].start)}]" if item.sources else ""
                lines.append(f"  homework: {homework_text(item)}{at}")
            lines += [f"  {finding_text(f)}" for f in found.report.risk_assessment()]
            for flag in flags.for_session(session, store, row.id):
                if flag.status == FlagStatus.open:
                    flags.decide(
                        session,
                        store,
                        actor,
                        [row.patient_id],
                        flag.id,
                        FlagStatus.acknowledged,
                        "Demo: reviewed with the recording",
                    )
                    lines.append(f"  the therapist acknowledged the {flag.category.value} flag")
            if found.status == ReportStatus.draft:
                service.approve(
                    session, store, actor, row, found.version, service.Approval(release=True)
                )
            session.commit()
    lines.append(
        f"The therapist approved version {found.version} and released the session: "
        f"{len(found.report.homework)} homework item(s) are now the patient's homework list."
    )
    return lines
