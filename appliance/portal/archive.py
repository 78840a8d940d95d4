"""The data export's ZIP: its JSON files, README.txt (the same bundle explained for a person,
in their language) and manifest.json. Kept apart from `export.py`, which decides what goes in:
this decides only how it is written, in memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from appliance.web.i18n import _

NOT_INCLUDED = ["audio_recordings", "clinical_notes", "clinical_only_passages", "access_log"]


def zip_bundle(
    format: str,
    files: dict[str, Any],
    counts: dict[str, int],
    made: datetime,
    clinic: str,
    zone: ZoneInfo,
) -> bytes:
    """The files as JSON, then README.txt, then manifest.json (listing every other file with
    its size and sha256), written into a `BytesIO`: nothing touches the disk."""
    local = made.astimezone(zone)
    stamp = local.timetuple()[:6]
    out = io.BytesIO()
    listed = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:

        def add(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
            listed.append(
                {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            )

        for name, document in files.items():
            add(name, as_json(document))
        add("README.txt", readme(clinic, local, counts).encode())
        manifest = {
            "format": format,
            "created_at": made.isoformat(),
            "clinic": clinic,
            "counts": counts,
            "files": listed,
            "not_included": NOT_INCLUDED,
        }
        add("manifest.json", as_json(manifest))
    return out.getvalue()


def as_json(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, indent=2, default=str).encode() + b"\n"


def readme(clinic: str, made: datetime, counts: dict[str, int]) -> str:
    """What each file holds, what is left out and why, and how to ask for the rest."""
    n = counts.get
    lines = [
        _("Your data from %(clinic)s") % {"clinic": clinic},
        _("Made on %(when)s.") % {"when": made.strftime("%Y-%m-%d %H:%M")},
        "",
        _(
            "This download holds the personal data the clinic's appliance keeps about you and "
            "that you may see. The .json files are for computer programs (you can open them in "
            "any text editor); this file explains them."
        ),
        "",
        _("profile.json: your name and e-mail address, and your portal account."),
        _("consents.json: what you agreed to or withdrew, when, and how (%(n)s changes).")
        % {"n": n("consent_events", 0)},
        _(
            "sessions.json: the dates of your %(n)s sessions, whether your therapist released "
            "each one to you, and the recordings made (length, size, checksum)."
        )
        % {"n": n("sessions", 0)},
        _(
            "transcripts/: what was said in the %(n)s sessions released to you, with times in "
            'seconds and who spoke (therapist or you). Lines marked "unclear" may be wrong.'
        )
        % {"n": n("transcripts", 0)},
        _(
            "homework.json: the %(n)s homework items and plans your therapist confirmed, and "
            "the ones you ticked off."
        )
        % {"n": n("homework_items", 0)},
        _(
            "conversations.json: your %(n)s questions in the portal and the answers, with the "
            "moments of your sessions they quoted."
        )
        % {"n": n("questions", 0)},
        _("messages.json: the %(n)s messages your therapist sent you.") % {"n": n("messages", 0)},
        _("manifest.json: a list of every file with its size and SHA-256 checksum."),
        "",
        _("Not included, and how to ask for it"),
        _(
            "- The audio recordings: they are large, and your therapist may have marked some "
            "passages as for clinical use only. Ask your clinic for a copy; they are listed in "
            "sessions.json so you can name them."
        ),
        _("- %(n)s passages your therapist marked as for clinical use only.")
        % {"n": n("passages_left_out", 0)},
        _("- Sessions not yet released to you, and your therapist's clinical notes."),
        _("- The record of who looked at your data and when."),
        _(
            "You have the right to all of these: ask your clinic, in person or in writing. "
            "They can also correct or delete your data."
        ),
        "",
        _("Keep this file safe: it is about your health. Anyone who has it can read it."),
    ]
    return "\n".join(lines) + "\n"
