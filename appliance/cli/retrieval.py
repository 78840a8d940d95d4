"""`appliance search` (retrieval only, for debugging what the patient chat would find),
`appliance eval retrieval` (recall and MRR on a labelled set), `appliance eval chat` (the
patient chat's answers to labelled questions over the same sessions) and `appliance eval
reports` (the report drafter's homework and risk on scripted sessions)."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import click
from sqlmodel import Session

from appliance.audit.service import Actor, cli_actor
from appliance.auth.guards import cli_principal
from appliance.cli import data_dir_option, data_session, emit, json_option, main, one_line_errors
from appliance.cli.speech import eval_group
from appliance.clinic.models import Patient, Role
from appliance.crypto.service import keystore_for
from appliance.errors import NotFound
from appliance.pipeline.exports import minute_clock


@main.command("search")
@click.option("--patient", "patient_id", type=click.UUID, required=True)
@click.argument("query")
@click.option("--by", "by_email", default=None, help="An administrator to record it as.")
@click.option(
    "--limit", type=click.IntRange(1, 50), default=None, help="Results (default: config)."
)
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Resolve 'last week' etc. against this date instead of the clinic's today.",
)
@data_dir_option
@json_option
@one_line_errors
def search(
    patient_id: uuid.UUID,
    query: str,
    by_email: str | None,
    limit: int | None,
    today: object,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """What the patient's chat would retrieve for QUERY: the same filters (this patient,
    released sessions, patient_chat consent), best first. Administrators only; audited."""
    from appliance.retrieval.search import as_json as payload
    from appliance.retrieval.search import audited_search

    if not query.strip():
        raise click.BadParameter("the query is empty", param_hint="QUERY")
    day: date | None = today.date() if today is not None else None  # type: ignore[attr-defined]
    with data_session(data_dir) as (settings, session):
        actor = admin_acting_on(session, by_email, patient_id)
        result = audited_search(
            session,
            keystore_for(settings),
            settings,
            actor,
            patient_id,
            query,
            today=day,
            limit=limit,
        )
    lines = [
        f"{n}. {hit.session_date} {minute_clock(hit.start)}-{minute_clock(hit.end)} "
        f"({hit.kind}, score {hit.score:.4f}) {hit.excerpt}"
        for n, hit in enumerate(result.hits, start=1)
    ]
    emit(payload(result), as_json, "\n".join(lines) or "Nothing found.")


def admin_acting_on(session: Session, by_email: str | None, patient_id: uuid.UUID) -> Actor:
    """Who a patient-data command acts as: clinic IT at the shell, or `--by` an administrator
    (anyone else is refused); the patient must exist."""
    actor = cli_actor()
    if by_email is not None:
        principal = cli_principal(session, by_email)
        principal.require(Role.admin)
        actor = principal.actor()
    if session.get(Patient, patient_id) is None:
        raise NotFound("no such patient")
    return actor


@eval_group.command("retrieval")
@click.argument(
    "labelled_set",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=False,
)
@data_dir_option
@json_option
@one_line_errors
def eval_retrieval(labelled_set: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Recall@1/@5 and MRR of the appliance's search on a labelled set (default: the bundled
    one), loaded into a scratch database with the configured embedder."""
    from appliance.cli import settings_for
    from appliance.retrieval.evaluate import evaluate, render

    result = evaluate(settings_for(data_dir), labelled_set)
    emit(result, as_json, render(result))


@eval_group.command("chat")
@click.argument(
    "chat_set",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=False,
)
@data_dir_option
@json_option
@one_line_errors
def eval_chat(chat_set: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Correct-and-cited rate, refusal precision/recall, crisis routing, canary leaks and
    unsupported sentences of the patient chat on a chat set (default: the bundled one) over
    the retrieval set's sessions, in a scratch database, with the configured demo LLM."""
    from appliance.chat.evaluate import default_chat_set, evaluate, render
    from appliance.cli import settings_for

    result = evaluate(settings_for(data_dir), chat_set or default_chat_set())
    emit(result, as_json, render(result))


@eval_group.command("reports")
@click.argument(
    "report_set",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=False,
)
@data_dir_option
@json_option
@one_line_errors
def eval_reports(report_set: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Homework recall/precision, risk-flag recall/precision, not-assessed correctness,
    assumed-normal phrases and seconds per report of the AI report drafter on a report set
    (default: the bundled one), with the configured LLM through `appliance llm`."""
    from appliance.cli import settings_for
    from appliance.reports.evaluate import evaluate, render

    result = evaluate(settings_for(data_dir), report_set)
    emit(result, as_json, render(result))
