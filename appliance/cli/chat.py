"""`appliance ask`: the patient chat path from the server's shell (same service as
`POST /api/v1/chat`), recorded as an administrator's action. Needs `appliance llm` running."""

from __future__ import annotations

import uuid
from pathlib import Path

import click

from appliance.cli import data_dir_option, data_session, emit, json_option, main, one_line_errors


@main.command("ask")
@click.option("--patient", "patient_id", type=click.UUID, required=True)
@click.argument("question")
@click.option("--by", "by_email", default=None, help="An administrator to record it as.")
@click.option("--conversation", "conversation_id", type=click.UUID, default=None)
@data_dir_option
@json_option
@one_line_errors
def ask(
    patient_id: uuid.UUID,
    question: str,
    by_email: str | None,
    conversation_id: uuid.UUID | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Answer QUESTION as the patient's chat would: cited sentences from their released
    sessions, or a refusal with its reason. Prints DESIGN.md's chat payload with --json."""
    from appliance.chat import service
    from appliance.chat.llm import LlamaServiceClient
    from appliance.cli.retrieval import admin_acting_on
    from appliance.clinic.preferences import effective_settings
    from appliance.crypto.service import keystore_for
    from appliance.pipeline.exports import minute_clock

    with data_session(data_dir) as (settings, session):
        actor = admin_acting_on(session, by_email, patient_id)
        with LlamaServiceClient.from_settings(settings) as model:
            current = effective_settings(settings, session)  # the console's crisis text, limit
            context = service.ChatContext(session, keystore_for(settings), current, actor, model)
            found = service.answer(context, patient_id, question, conversation_id=conversation_id)
    lines = [found.answer]
    for n, c in enumerate(found.citations, start=1):
        at = minute_clock(c.start) if c.in_recording else "therapist's notes"
        lines.append(f"  [{n}] session of {c.session_date}, {at}: {c.excerpt}")
    emit(found.model_dump(mode="json"), as_json, "\n".join(lines))
