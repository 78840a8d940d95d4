"""Plain words for the pipeline's stages, job states and consent purposes.

Stage and state names (`transcribe`, `dead`) are the code's vocabulary; a therapist reads
"Transcribing" and "Stopped". The words live here, in one place, so every page that shows a
job (a session's progress, later the admin's jobs dashboard) says the same thing in every
language. Module-level strings are lazy: they are translated when a page turns them into text.
"""

from __future__ import annotations

from appliance.consent.models import Purpose
from appliance.jobs.models import JobState
from appliance.web.i18n import _, lazy

STAGE_LABELS: dict[str, str] = {
    "probe": lazy("Checking the audio"),
    "transcribe": lazy("Transcribing"),
    "diarize": lazy("Telling speakers apart"),
    "attribute": lazy("Naming therapist and patient"),
    "chunk": lazy("Splitting into passages"),
    "embed": lazy("Indexing for questions"),
    "report": lazy("Drafting the report"),
}

STATE_LABELS: dict[str, str] = {
    JobState.queued.value: lazy("Waiting"),
    JobState.running.value: lazy("Working"),
    JobState.succeeded.value: lazy("Done"),
    JobState.failed.value: lazy("Failed, will retry"),
    JobState.dead.value: lazy("Stopped"),
    JobState.cancelled.value: lazy("Not run"),
}

# The consent each purpose stands for, as the consent page names it.
PURPOSE_LABELS: dict[str, str] = {
    Purpose.recording.value: lazy("recording"),
    Purpose.transcription.value: lazy("transcription"),
    Purpose.ai_analysis.value: lazy("AI analysis"),
    Purpose.patient_chat.value: lazy("patient chat"),
}

# What cannot happen without each purpose's consent, said to the therapist.
PURPOSE_EFFECTS: dict[str, str] = {
    Purpose.recording.value: lazy("recordings of this patient cannot be uploaded"),
    Purpose.transcription.value: lazy(
        "the recording is stored but will not be transcribed, and nothing after transcription runs"
    ),
    Purpose.ai_analysis.value: lazy("no report will be drafted from the transcript"),
    Purpose.patient_chat.value: lazy("the session will not be indexed for the patient's questions"),
}


def stage_label(stage: str) -> str:
    """The stage in words; an unknown stage (a newer pipeline) shows under its own name."""
    found = STAGE_LABELS.get(stage)
    return str(found) if found is not None else stage


def state_label(state: str) -> str:
    found = STATE_LABELS.get(state)
    return str(found) if found is not None else state


def purpose_label(purpose: str) -> str:
    found = PURPOSE_LABELS.get(purpose)
    return str(found) if found is not None else purpose.replace("_", " ")


def purpose_effect(purpose: str) -> str:
    found = PURPOSE_EFFECTS.get(purpose)
    return str(found) if found is not None else ""


def plain_outcome(state: str, attempts: int, last_error: str | None, purpose: str = "") -> str:
    """A sentence for someone who is not the clinic's IT: what a failed, stopped or skipped
    step means for them, never the exception text (that stays for administrators, who can
    act on it, on the Jobs page)."""
    if state == JobState.failed.value:
        return _("This step failed; it will be retried.")
    if state == JobState.dead.value:
        return _(
            "This step stopped after %(n)s attempts; the clinic's IT can see the reason on "
            "the Jobs page."
        ) % {"n": attempts}
    if state == JobState.cancelled.value:
        error = last_error or ""
        if error.startswith("consent"):
            if error.startswith("consent for "):  # this stage's, or an earlier stage's, purpose
                purpose = error.removeprefix("consent for ").split(" ")[0]
            return _("Not run: the patient has not given consent for %(purpose)s.") % {
                "purpose": purpose_label(purpose)
            }
        return _("Not run: stopped by the clinic.")
    return ""
