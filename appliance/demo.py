"""`appliance demo`: the main job, end to end, as far as this build goes.

It says what it did and what it could not do yet; it never pretends. Each later issue extends
it (ingest a recorded session, transcribe, diarize, embed, answer a patient's question).
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import date

from sqlmodel import select

from appliance.audit import service as audit
from appliance.audit.chain import verify_bundle
from appliance.audit.service import cli_actor
from appliance.auth.guards import cli_principal
from appliance.clinic import service
from appliance.clinic.models import Role, TherapistAssignment
from appliance.clinic.schemas import PatientCreate, UserCreate
from appliance.consent import service as consent
from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
from appliance.crypto.service import keystore_for
from appliance.db import open_database
from appliance.demo_chat import answer_on_portal, llm_service, portal_account, web_server
from appliance.demo_report import draft_and_approve, with_llm
from appliance.demo_speech import (
    RECORDING,
    demo_file,
    describe_transcript,
    enrol_therapist_voice,
    release_and_search,
)
from appliance.doctor import check_models
from appliance.instance import initialise
from appliance.modelfiles.manifest import ModelError
from appliance.recordings import ingest
from appliance.recordings import service as sessions
from appliance.recordings.models import TherapySession
from appliance.recordings.schemas import SessionCreate
from appliance.settings import Settings

DEMO_THERAPIST = "therapist@demo.clinic.invalid"
DEMO_PATIENTS = ("Robin Example", "Sam Example")
DEMO_PORTAL = "robin@demo.clinic.invalid"  # Robin's portal account

DEMO_QUESTION = "What homework did we agree on?"


def run_demo(settings: Settings, say: Callable[[str], None]) -> None:
    say(f"1. Initialising the appliance in {settings.data_dir} ...")
    report = initialise(settings)
    say(
        f"   {report.database} PostgreSQL with pgvector, migrations at {report.revision}, "
        f"clinic {report.clinic.name!r}, key-encryption key {report.kek_id}."
    )

    say("2. Checking the demo models (sizes; `appliance doctor` re-hashes them) ...")
    checks = check_models(settings, full=False)
    missing = [c for c in checks if c.status != "ok"]
    for check in checks:
        say(f"   {check.status.upper():<4} {check.name}: {check.detail}")
    if missing:
        raise ModelError("demo models are missing; run: appliance models install --profile demo")

    say("3. Creating the demo therapist and two patients (names stored encrypted) ...")
    patient_ids = _ensure_demo_people(settings)
    say(f"   therapist {DEMO_THERAPIST}; patients {', '.join(str(p) for p in patient_ids)}")

    say("4. Starting the web service on 127.0.0.1 and asking it whether it is ready ...")
    ready, schema_paths = _probe_web(settings)
    say(f"   /health/ready -> {ready['status']}; OpenAPI at /schema lists {schema_paths} paths")

    say("5. The therapist enrols their voice (a separate short recording), so the pipeline")
    say("   can tell by voice which speaker is the therapist ...")
    say(f"   {enrol_therapist_voice(settings, DEMO_THERAPIST)}")
    say("   Taking a recorded session in: consent to recording, transcription, AI analysis and")
    say("   patient chat,")
    say("   a session,")
    say(f"   the recorded dialogue (demo/{RECORDING}, therapist and patient), then the upload")
    say("   path: encrypted as it is written, proven to be audio by decoding it ...")
    recording_id, session_id, summary = _ingest_demo_recording(settings, patient_ids[0])
    say(f"   {summary}")
    say("6. Running its pipeline jobs: probe, transcribe (faster-whisper), diarize (Silero VAD")
    say("   + Resemblyzer), attribute (words to speakers, speakers to roles), chunk (sealed")
    say("   passages of whole sentences), embed (all-MiniLM-L6-v2 into pgvector); leased,")
    say("   retried, exactly-once; here without a worker, as `appliance ingest --wait` does) ...")
    for line in _run_pipeline(settings, recording_id):
        say(f"   {line}")
    say("   The transcript, as the therapist's API returns it:")
    for line in describe_transcript(settings, session_id, DEMO_THERAPIST):
        say(f"   {line}")

    say("7. `appliance llm` starts as its own process (llama.cpp, the Qwen2.5 0.5B GGUF). The")
    say("   report job drafts the session report from the diarized transcript (every statement")
    say("   linked to its utterances; risk topics never discussed say 'not assessed'); the")
    say("   therapist reviews it, approves it and releases the session for patient questions ...")
    started = time.monotonic()
    with llm_service(settings) as llm:
        say(f"   the model loaded in {time.monotonic() - started:.1f} s")
        llm_settings = with_llm(settings, llm)
        for line in draft_and_approve(llm_settings, recording_id, session_id, DEMO_THERAPIST):
            say(f"   {line}")

        say(f"8. The patient asks {DEMO_QUESTION!r}; retrieval finds, in this patient's released")
        say("   sessions only (filtered in SQL), the passages an answer would cite:")
        for line in release_and_search(settings, session_id, DEMO_THERAPIST, DEMO_QUESTION):
            say(f"   {line}")

        say("9. The patient signs in to the portal and asks the same question. Approved homework")
        say("   answers it word for word (other questions stream from `appliance llm`, keeping")
        say("   only the sentences the passages support); each is cited with session date and")
        say("   minute, and the cited minute is decrypted for this patient only ...")
        password = portal_account(settings, patient_ids[0], DEMO_PORTAL)
        for line in answer_on_portal(settings, llm, DEMO_PORTAL, password, DEMO_QUESTION):
            say(f"   {line}")

    say("10. Exporting the audit log and verifying it offline (hash chain, signed checkpoints) ...")
    say(f"   {_audit_round_trip(settings)}")

    say("")
    say("To try the portal yourself: run `appliance llm` and `appliance web` with")
    say(f"   --data-dir {settings.data_dir}, open http://127.0.0.1:{settings.web.port}/portal and")
    say(f"   sign in as {DEMO_PORTAL} with the password {password}")
    say("A recorded session went in; the local model drafted its report, the therapist approved")
    say("it, the patient's question got a cited answer, and nothing left this machine.")


def _ensure_demo_people(settings: Settings) -> list[uuid.UUID]:
    store = keystore_for(settings)
    with open_database(settings) as database, database.session() as session:
        existing = service.find_user(session, DEMO_THERAPIST)
        if existing is not None:
            therapist_id = existing.id
            ids = session.exec(
                select(TherapistAssignment.patient_id).where(
                    TherapistAssignment.therapist_id == therapist_id
                )
            ).all()
            return list(ids)
        actor = cli_actor()
        service.add_user(
            session,
            actor,
            UserCreate(email=DEMO_THERAPIST, name="Dr. Demo Therapist", role=Role.therapist),
        )
        ids = [
            service.add_patient(
                session, store, actor, PatientCreate(name=name, therapist_email=DEMO_THERAPIST)
            ).id
            for name in DEMO_PATIENTS
        ]
        session.commit()
        return list(ids)


def _ingest_demo_recording(
    settings: Settings, patient_id: uuid.UUID
) -> tuple[uuid.UUID, uuid.UUID, str]:
    store = keystore_for(settings)
    with open_database(settings) as database, database.session() as session:
        therapist = cli_principal(session, DEMO_THERAPIST)
        actor = therapist.actor()
        needed = [
            purpose
            for purpose in (
                Purpose.recording,
                Purpose.transcription,
                Purpose.ai_analysis,
                Purpose.patient_chat,
            )
            if not consent.is_granted(session, patient_id, purpose)
        ]
        if needed:
            consent.change(
                session, actor, patient_id, needed, ConsentStatus.granted, ConsentMethod.in_person
            )
        existing = sessions.list_sessions(session, [patient_id], limit=1).items
        session_id = (
            existing[0].id
            if existing
            else sessions.add_session(
                session, actor, SessionCreate(patient_id=patient_id, session_date=date.today())
            ).id
        )
        session.commit()
        row = session.get(TherapySession, session_id)
        assert row is not None
        prepared = ingest.prepare(
            session,
            settings,
            store,
            actor,
            row,
            f"demo-{RECORDING}",
            idempotency_key="demo-dialogue-1",
        )
        if isinstance(prepared, ingest.Accepted):
            return (
                prepared.recording_id,
                session_id,
                f"already ingested earlier: recording {prepared.recording_id}",
            )
        prepared.write(demo_file(RECORDING).read_bytes())
        done = prepared.finish(session)
    return (
        done.recording_id,
        session_id,
        (
            f"recording {done.recording_id}: {done.duration_seconds:.1f} s, "
            f"{done.size_bytes / 1024:.0f} KiB, stored encrypted under {settings.files_dir}; "
            f"jobs queued: {', '.join(stage for _, stage, _ in done.jobs)}"
        ),
    )


def _run_pipeline(settings: Settings, recording_id: uuid.UUID) -> list[str]:
    """What `appliance ingest --wait` does when no worker service runs: the stages, here."""
    from sqlmodel import select

    from appliance.jobs.runner import wait_for_recording
    from appliance.pipeline.models import RecordingProbe
    from appliance.pipeline.stages import BACKGROUND

    with open_database(settings) as database:
        finished = wait_for_recording(settings, database, recording_id)
        with database.session() as session:
            probe = session.exec(
                select(RecordingProbe).where(RecordingProbe.recording_id == recording_id)
            ).first()
    lines = [
        f"{job.stage}: {job.state} after {job.attempts} attempt(s)"
        + (f" ({job.last_error})" if job.last_error else "")
        for job in finished
        if job.stage not in BACKGROUND
    ]
    lines += [
        f"{job.stage}: {job.state} (needs `appliance llm`: step 7)"
        for job in finished
        if job.stage in BACKGROUND
    ]
    if probe is not None:
        lines.append(
            f"probe measured {probe.duration_seconds:.1f} s, {probe.sample_rate} Hz, "
            f"{probe.channels} channel(s), {probe.integrated_lufs:.1f} LUFS integrated, "
            f"peak {probe.peak_dbfs:.1f} dBFS, {probe.silent_fraction:.0%} silent"
        )
    if any(job.state != "succeeded" for job in finished if job.stage not in BACKGROUND):
        raise RuntimeError("a pipeline stage did not succeed: " + "; ".join(lines))
    return lines


def _audit_round_trip(settings: Settings) -> str:
    key = audit.load_signing_key(settings.audit_key_path)
    out = settings.data_dir / "audit-export.json"
    with open_database(settings) as database, database.session() as session:
        audit.export_signed(session, audit.cli_actor(), key, out)
        session.commit()
    verdict = verify_bundle(json.loads(out.read_bytes()))
    state = "verify" if verdict.ok else f"FAIL: {verdict.reason}"
    return f"{verdict.entries} entries, {verdict.checkpoints} checkpoints {state} ({out})"


def _probe_web(settings: Settings) -> tuple[dict[str, object], int]:
    with web_server(settings) as base:
        ready = _get_json(f"{base}/health/ready")
        schema = _get_json(f"{base}/schema")
        return ready, len(schema.get("paths", {}))  # type: ignore[arg-type]


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (loopback URL we built)
        data: dict[str, object] = json.load(response)
        return data
