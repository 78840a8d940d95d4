"""Text that domain modules write in English and pages show: labels, statuses, section titles
and the refusals (`DomainError` messages) people most often meet on a page.

Those modules stay language-neutral (the API answers in English; reports and exports are
documents), so their strings are not wrapped where they are written. Pages translate them when
shown, by lookup (`_(str(exc))`, `translate(label)` in templates); listing them here puts them
in the catalog. A string that changes at its source simply stops matching and shows in English:
update it here too (nothing breaks meanwhile).
"""

from __future__ import annotations

from appliance.web.i18n import N_

LABELS = (
    # appliance.chat.alerts.CATEGORY_LABELS
    N_("Suicide risk"),
    N_("Self-harm"),
    N_("Harm to others"),
    # appliance.reports.document.RISK_LABELS
    N_("Suicidal ideation"),
    N_("Abuse or neglect"),
    # appliance.pipeline.exports.NAMES (speaker roles)
    N_("Therapist"),
    N_("Patient"),
    N_("Other"),
    N_("Unknown"),
    # appliance.reports.document.sections (note formats' section titles)
    N_("Subjective"),
    N_("Objective"),
    N_("Assessment"),
    N_("Plan"),
    N_("Data"),
    N_("Behavior"),
    N_("Intervention"),
    N_("Response"),
    N_("Summary"),
    N_("Key points"),
    N_("Interventions"),
    N_("Homework"),
    N_("Treatment plan"),
    N_("Risk"),
    # report versions and risk flags (statuses)
    N_("draft"),
    N_("approved"),
    N_("open"),
    N_("acknowledged"),
    N_("dismissed"),
)

REFUSALS = (
    # sign-in and second factor (appliance.auth)
    N_("invalid e-mail address or password"),
    N_("a valid one-time code from your authenticator is required"),
    N_("too many failed sign-ins; try again later"),
    N_("too many attempts; try again later"),
    N_("rate limit reached; try again later"),
    N_("start enrolment first"),
    N_("that code is not valid; check the authenticator's clock and try again"),
    N_("missing or invalid CSRF token"),
    N_("your role may not do this"),
    N_("sign in first"),
    N_("your session has ended; sign in again"),
    N_("cross-site sign-in refused"),
    # the portal
    N_("the question is empty"),
    N_("no patient record is linked to this account"),
    N_("no such conversation"),
    N_("send a recording of your voice"),
    N_("an account with this e-mail address exists already; sign in instead"),
    N_("no such invitation"),
    # the console
    N_("Your voice is enrolled."),  # appliance.pipeline.pages.VOICE_NOTICES
    N_("Your voiceprint is deleted."),
    # appliance.reports.controllers.drafting (why a session has no report yet)
    N_(
        "No report is drafted for this session: the patient has not consented to "
        "AI analysis (ai_analysis)."
    ),
    N_("No report yet: the session has no recording to draft one from."),
    N_("no such patient"),
    N_("no such session"),
    N_("no such message"),
    N_("no such alert"),
    N_("no such job"),
    N_("no such user"),
    N_("this session has no recording"),
    N_("a message needs a subject and a body"),
    N_("the message changed since you read it; read it again first"),
    N_("only a therapist of this patient can release a session"),
    N_("the form data is malformed"),
    N_("a user with this e-mail address already exists"),
    N_("you cannot demote or disable yourself; ask another administrator"),
    N_("the clinic needs at least one active administrator"),
    N_("a patient keeps at least one therapist; assign another one first"),
    N_("this patient already has a portal account"),
    # Litestar's own (a route or method that does not exist)
    N_("Not Found"),
    N_("Method Not Allowed"),
)
