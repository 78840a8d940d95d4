"""What the report drafter sends the model: the instructions, one worked example, the
therapist's writing profile, and the transcript cut into numbered windows that fit the context.

The demo model is a 0.5B instruct model on CPU. JSON and long instruction lists defeat it; a
line-oriented format shown once by a worked example (a previous user/assistant turn) is what
it follows best, so every note is `TYPE: text [line numbers]`. It still copies the example now
and then and miscounts line numbers by one, which the drafter's own checks catch (draft.py).

The instructions and the example come first and never change, so llama.cpp keeps them in its
prompt cache from one window (and one session) to the next: only the window is processed anew.
Utterances are numbered across the whole transcript, so a number names one utterance even when
the transcript is cut into windows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.chat.llm import ChatMessage
from appliance.errors import Invalid
from appliance.reports.document import Line

# Rough and on the safe side: English runs near 4 characters a token with Qwen's tokenizer;
# the numbering ("[412] therapist: ") runs denser, so 3.5 leaves room for it.
CHARS_PER_TOKEN = 3.5
# Room for the chat template's role markers and for estimates that run short.
MARGIN_TOKENS = 96
# A window smaller than this leaves the model too little to summarise: the context is too small.
MIN_WINDOW_TOKENS = 200
# And never larger than this, however large the context: a 0.5B model loses track of line
# numbers in long windows, and on two CPU cores (~35-100 prompt tokens/s) a window of the
# whole 4k context plus its reply can outlast the LLM service's 120 s request timeout.
MAX_WINDOW_TOKENS = 1800
EXAMPLE_NOTES_CHARS = 1500  # of the therapist's example notes, so they cannot crowd out the window

SYSTEM = """You write short notes about a therapy session transcript for the therapist. Each note is one line: its type, a short sentence in your own words, and the numbers of the transcript lines it is based on, in square brackets.
Types: SUMMARY (what the session was about), POINT (an important thing the patient said), INTERVENTION (what the therapist did), HOMEWORK (task | how often | by when), PLAN (what comes in later sessions), RISK (suicide, self-harm, harm to others or abuse that the patient talked about).
Only write what the transcript says."""  # noqa: E501

EXAMPLE_TRANSCRIPT = """[1] therapist: How was the week with the drinking?
[2] patient: I had wine every night. My wife is upset with me.
[3] therapist: What happens before you pour the first glass?
[4] patient: I get home tired and bored. Some nights I feel like a burden to everyone.
[5] therapist: Let's list what else you could do when you get home. A short run, a call to your brother?
[6] patient: A run could work. I used to run a lot.
[7] therapist: Good. This week, please go for a run on three evenings, and count your drinks every day until we meet on Monday.
[8] patient: Okay. I can do that.
[9] therapist: Next time we'll talk about your wife's worries."""  # noqa: E501

EXAMPLE_NOTES = """SUMMARY: The patient drinks wine every night and feels like a burden. [2, 4]
POINT: He drinks when he gets home tired and bored. [4]
INTERVENTION: The therapist listed other things to do after work. [5]
HOMEWORK: go for a run | three evenings | this week [7]
HOMEWORK: count drinks | every day | Monday [7]
PLAN: Talk about the wife's worries next time. [9]
RISK: suicide [4]"""

ASK = "Transcript:\n{transcript}\n\nWrite the notes."

REDUCE_SYSTEM = """You summarise a therapy session for the therapist from notes on its parts. Write two or three short sentences in plain words. Only use what the notes say."""  # noqa: E501

REDUCE_ASK = "Notes on the parts of one session, in order:\n{notes}\n\nWrite the summary."

# Where the profile goes: after the instructions, so the cached prefix is per therapist.
PROFILE_HEADER = "How this therapist writes notes (follow the style, never copy the content):"


@dataclass(frozen=True)
class Profile:
    """The therapist's writing profile (table therapist_profiles): shapes wording only."""

    approach: str = ""
    tone: str = ""
    preferred_terms: str = ""
    example_notes: str = ""


@dataclass(frozen=True)
class Window:
    """A run of consecutive utterances sent to the model at once; `first` is the global
    number of the first one (1-based), so `[first + i]` names `lines[i]`."""

    first: int
    lines: tuple[Line, ...]

    @property
    def numbers(self) -> range:
        return range(self.first, self.first + len(self.lines))

    def line(self, number: int) -> Line | None:
        """The utterance with that global number, if it is in this window."""
        if number in self.numbers:
            return self.lines[number - self.first]
        return None


def profile_text(profile: Profile | None) -> str:
    """The profile as the system prompt carries it (empty without one)."""
    if profile is None:
        return ""
    parts = [
        f"Approach: {profile.approach.strip()}" if profile.approach.strip() else "",
        f"Tone: {profile.tone.strip()}" if profile.tone.strip() else "",
        f"Preferred terms: {profile.preferred_terms.strip()}"
        if profile.preferred_terms.strip()
        else "",
        f"Example notes:\n{profile.example_notes.strip()[:EXAMPLE_NOTES_CHARS]}"
        if profile.example_notes.strip()
        else "",
    ]
    body = "\n".join(part for part in parts if part)
    return f"{PROFILE_HEADER}\n{body}" if body else ""


def system_prompt(profile: Profile | None) -> str:
    shaped = profile_text(profile)
    return f"{SYSTEM}\n\n{shaped}" if shaped else SYSTEM


def prompt_hash(profile: Profile | None) -> str:
    """sha256 of every template and the profile, never the transcript: two drafts with the
    same hash were asked the same way (AI provenance on the stored report)."""
    digest = hashlib.sha256()
    for part in (
        SYSTEM,
        EXAMPLE_TRANSCRIPT,
        EXAMPLE_NOTES,
        ASK,
        REDUCE_SYSTEM,
        REDUCE_ASK,
        profile_text(profile),
    ):
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def numbered(number: int, line: Line) -> str:
    text = " ".join(line.text.split())
    return f"[{number}] {line.speaker}: {text}"


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


def map_messages(window: Window, profile: Profile | None) -> list[ChatMessage]:
    """One window's request: instructions, the worked example as an earlier turn, the window."""
    transcript = "\n".join(
        numbered(n, line) for n, line in zip(window.numbers, window.lines, strict=True)
    )
    return [
        ChatMessage("system", system_prompt(profile)),
        ChatMessage("user", ASK.format(transcript=EXAMPLE_TRANSCRIPT)),
        ChatMessage("assistant", EXAMPLE_NOTES),
        ChatMessage("user", ASK.format(transcript=transcript)),
    ]


def reduce_messages(notes: Sequence[str], profile: Profile | None) -> list[ChatMessage]:
    shaped = profile_text(profile)
    system = f"{REDUCE_SYSTEM}\n\n{shaped}" if shaped else REDUCE_SYSTEM
    listed = "\n".join(f"- {note}" for note in notes)
    return [ChatMessage("system", system), ChatMessage("user", REDUCE_ASK.format(notes=listed))]


def window_budget(profile: Profile | None, max_tokens: int, context_tokens: int) -> int:
    """Tokens one window's numbered lines may take: the context less the fixed prompt, the
    reply and a margin, at most `MAX_WINDOW_TOKENS`. `Invalid` when that leaves too little to
    be worth a model call."""
    fixed = sum(estimate_tokens(m.content) for m in map_messages(Window(1, ()), profile))
    budget = context_tokens - max_tokens - fixed - MARGIN_TOKENS
    if budget < MIN_WINDOW_TOKENS:
        raise Invalid(
            f"a context of {context_tokens} tokens leaves {max(budget, 0)} for the transcript "
            f"after the prompt and {max_tokens} reply tokens; raise [llm] n_ctx or lower "
            "[reports] max_tokens"
        )
    return min(budget, MAX_WINDOW_TOKENS)


def split_windows(lines: Sequence[Line], budget: int) -> list[Window]:
    """Consecutive utterances, as many per window as fit `budget` tokens (estimated). An
    utterance too long for a window on its own is cut to fit: it still gets its number."""
    windows: list[Window] = []
    current: list[Line] = []
    used, first = 0, 1
    for number, line in enumerate(lines, start=1):
        cost = estimate_tokens(numbered(number, line)) + 1
        if cost > budget:
            keep = max(int((budget - 16) * CHARS_PER_TOKEN), 1)
            line = Line(line.start, line.end, line.speaker, line.text[:keep])
            cost = estimate_tokens(numbered(number, line)) + 1
        if current and used + cost > budget:
            windows.append(Window(first, tuple(current)))
            current, used, first = [], 0, number
        current.append(line)
        used += cost
    if current:
        windows.append(Window(first, tuple(current)))
    return windows
