"""A therapist's writing profile (approach, tone, preferred terms, example notes): what the
report stage gives the local model so that drafts read like the therapist's own notes.

It is the signed-in therapist's own: nobody reads or writes another's. Example notes must be
de-identified (the console says so); they never leave the appliance. Updates are audited with
the names of the fields that changed, never their text.
"""

from __future__ import annotations

import uuid

from sqlmodel import Session

from appliance.audit.service import Actor, AuditEntry, record
from appliance.errors import Invalid
from appliance.jobs.service import now_utc
from appliance.reports.models import TherapistProfile
from appliance.reports.prompt import Profile
from appliance.reports.schemas import ProfilePublic, ProfileUpdate

FIELDS = ("approach", "tone", "preferred_terms", "example_notes")


def _public(row: TherapistProfile | None) -> ProfilePublic:
    if row is None:
        return ProfilePublic(
            approach="", tone="", preferred_terms="", example_notes="", updated_at=None
        )
    return ProfilePublic(
        approach=row.approach,
        tone=row.tone,
        preferred_terms=row.preferred_terms,
        example_notes=row.example_notes,
        updated_at=row.updated_at,
    )


def get(session: Session, user_id: uuid.UUID) -> ProfilePublic:
    """The therapist's profile; an empty one before the first save."""
    return _public(session.get(TherapistProfile, user_id))


def update(session: Session, actor: Actor, data: ProfileUpdate) -> ProfilePublic:
    """Replace the actor's profile (caller commits; audited `profile.update`)."""
    if actor.user_id is None or actor.role != "therapist":
        raise Invalid("only a therapist has a writing profile")
    row = session.get(TherapistProfile, actor.user_id, with_for_update=True)
    if row is None:
        row = TherapistProfile(user_id=actor.user_id)
    changed = []
    for name in FIELDS:
        value = getattr(data, name).strip()
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed.append(name)
    row.updated_at = now_utc()
    session.add(row)
    session.flush()
    record(
        session,
        actor,
        AuditEntry(
            "profile.update",
            "success",
            "user",
            str(actor.user_id),
            None,
            {"fields": changed},
        ),
    )
    return _public(row)


def writing_profile(session: Session, user_id: uuid.UUID) -> Profile | None:
    """The therapist's profile as the drafting prompts (reports, messages) take it; None when
    they have not written one."""
    row = session.get(TherapistProfile, user_id)
    if row is None:
        return None
    return Profile(row.approach, row.tone, row.preferred_terms, row.example_notes)
