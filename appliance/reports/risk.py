"""Risk in a drafted report: deterministic, linked to the exact utterances, never left to the
model alone.

Per category (suicidal ideation, self-harm, harm to others, abuse or neglect), over the
transcript:

- `flagged` when something the patient (any speaker but the therapist) said matches the
  category's disclosure patterns in a clause that does not negate it. Suicide, self-harm and
  harm to others reuse the patient chat's crisis patterns (`appliance.chat.safety`), which err
  towards firing; abuse and neglect have their own list here. A flag is a question for the
  therapist, who acknowledges or dismisses it, so erring towards firing is right here too.
- `discussed` when the therapist asked about the topic (a screening question) and the answer
  raised nothing, or the patient mentioned it only to negate it ("I don't want to die").
  Sources: the question and the answer, so the therapist sees how it was asked and answered.
- `not_assessed` otherwise. The report never says "denies" or "no risk" for a topic nobody
  raised: silence is not an assessment.

Where diarization could not tell a speaker's role, their screening questions count as the
therapist's and everything else they say is read like the patient's.

The model may add a flag (a `RISK:` note) only where the utterance it cites is the patient's
and carries the category's words in a clause that does not negate them (`confirms`): a 0.5B
model invents risk as easily as it misses it. Its other notes are dropped when they assert an
unassessed normal ("denies SI", "no risk", "within normal limits") or name a risk topic only to
negate it (`assumed_normal`). Patterns are English only, like the chat's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from appliance.chat.safety import CRISIS_PATTERNS, CrisisCategory
from appliance.reports.document import Line, RiskFinding, RiskStatus, Source
from appliance.reports.models import RiskCategory

THERAPIST = "therapist"
PATIENT = "patient"
Patterns = tuple[re.Pattern[str], ...]

_FROM_CRISIS = {
    CrisisCategory.suicide: RiskCategory.suicidal_ideation,
    CrisisCategory.self_harm: RiskCategory.self_harm,
    CrisisCategory.harm_to_others: RiskCategory.harm_to_others,
}

# Written against `plain()` text, like the crisis patterns: lower case, no apostrophes.
_SOMEONE = (
    r"(?:he|she|they|him|her|them|my|his|their|our|dad|mum|mom|father|mother|stepdad|stepmom|"
    r"husband|wife|partner|boyfriend|girlfriend|ex|brother|sister|uncle|aunt|grandad|grandpa|"
    r"teacher|coach|boss|someone|somebody)"
)
_BLOWS = (
    r"(?:hit|hits|hitting|beat|beats|beating|beaten|slap\w*|punch\w*|kick\w*|push\w*|shov\w*|"
    r"chok\w*|strangl\w*|grab\w*|throw\w* \w+ at|threw \w+ at|burn\w*|bit|bites|hurt|hurts|"
    r"hurting)"
)
_CHILD = r"(?:my|the|our|his|her) (?:kids?|son|daughter|child|children|baby|little \w+)"
ABUSE: Patterns = tuple(
    re.compile(p)
    for p in (
        rf"\b{_SOMEONE} (?:\w+ ){{0,4}}?{_BLOWS} (?:me|us)\b",
        rf"\b{_BLOWS} {_CHILD}\b",
        r"(?<!substance )(?<!alcohol )(?<!drug )\babus(?:e|ed|es|ing|ive|er)\b",
        r"\b(?:molest\w*|rap(?:e|ed|ing)|sexually (?:assault\w*|abus\w*))\b",
        r"\bdomestic (?:violence|abuse)\b",
        r"\btouch(?:ed|es|ing)? me (?:there|down there|inappropriately|when|where|at night)\b",
        r"\bthreat\w* to (?:kill|hurt|hit|beat|take) (?:me|us|the kids)\b",
        r"\b(?:afraid|scared|terrified) (?:of (?:him|her|them|my \w+)|to go home)\b",
        r"\b(?:not|dont|do not|never) (?:feel )?safe (?:at home|with (?:him|her|them))\b",
        r"\block(?:s|ed)? (?:me|us) (?:in|out|up)\b",
        r"\b(?:no|not enough|never any) food (?:in the house|at home|for (?:me|us|the kids))\b",
        r"\b(?:left|leaves|leave) (?:me|us|the kids|my \w+) alone for (?:days|the night|a week)\b",
        r"\b(?:dont|doesnt|didnt|never) (?:feed|fed) (?:me|us|the kids)\b",
        r"\bneglect\w*\b",
        r"\bforc\w* me to (?:have sex|do (?:things|stuff)|touch)\b",
        r"\b(?:wont|doesnt|does not|will not|never) let me (?:see|leave|go out|have (?:my own )?"
        r"money|talk to|call)\b",
        r"\bbruises?\b.*\b(?:he|she|they)\b|\b(?:he|she|they)\b.*\bbruises?\b",
    )
)

# Passive wishes the chat's patterns (written for questions to the portal) leave out.
SUICIDAL_EXTRA: Patterns = tuple(
    re.compile(p)
    for p in (
        r"\b(?:easier|better) (?:for (?:everyone|everybody|them) )?if i (?:just |simply )?"
        r"(?:wasnt|werent|was not|were not|didnt exist|was gone|were gone|died)\b",
        r"\b(?:thinking|think|thought|thoughts) (?:about|of) (?:dying|death|killing myself|"
        r"ending (?:it|my life|things))\b",
        r"\bno reason to (?:live|go on|keep going|be here)\b",
        r"\bending it\b",
    )
)

DISCLOSURES: dict[RiskCategory, Patterns] = {
    **{
        _FROM_CRISIS[crisis]: tuple(pattern for _, pattern in patterns)
        for crisis, patterns in CRISIS_PATTERNS.items()
    },
    RiskCategory.abuse_neglect: ABUSE,
}
DISCLOSURES[RiskCategory.suicidal_ideation] += SUICIDAL_EXTRA

_FIRST_PERSON = re.compile(r"\b(?:i|im|ive|id|me|my|myself)\b")
_SWAPPED_ROLE_CHECK = {
    category: DISCLOSURES[category]
    for category in (RiskCategory.suicidal_ideation, RiskCategory.self_harm)
}

# A therapist asking about the topic. Only questions count (a "?" or a question's opening):
# psychoeducation that names a topic is not an assessment.
SCREENING: dict[RiskCategory, re.Pattern[str]] = {
    RiskCategory.suicidal_ideation: re.compile(
        r"\bsuicid\w*|\b(?:end|ending|take|taking) your (?:own )?life\b|\bkill\w* yourself\b|"
        r"\b(?:want|wanting|wish|wished|wishing) (?:to|you were|you could) (?:die|be dead)\b|"
        r"\bthoughts? (?:of|about) (?:death|dying|not being here)\b|\bbetter off dead\b|"
        r"\bnot (?:want|wanting) to (?:live|be alive|be here|wake up)\b|\bworth living\b"
    ),
    RiskCategory.self_harm: re.compile(
        r"\b(?:hurt|hurting|harm|harming|cut|cutting|injur\w*|burn\w*) (?:yourself|your (?:arms?|"
        r"legs?|body|skin))\b|\bself ?(?:harm\w*|injur\w*)\b"
    ),
    RiskCategory.harm_to_others: re.compile(
        r"\b(?:hurt|hurting|harm|harming|kill|killing|attack\w*|hit|hitting) (?:your \w+|anyone|"
        r"anybody|someone|somebody|others|other people|him|her|them)\b|\bviolen\w*\b|"
        r"\bhomicid\w*\b"
    ),
    RiskCategory.abuse_neglect: re.compile(
        r"\bsafe (?:at home|with (?:him|her|them)|there)\b|\b(?:hurt|hurts|hit|hits|harm\w*|"
        r"touch\w*|abus\w*|threaten\w*) you\b|\babus\w*|\bdomestic violence\b|"
        r"\b(?:afraid|scared) of (?:him|her|them|your \w+)\b|\bneglect\w*"
    ),
}
_QUESTION_OPENING = re.compile(
    r"^(?:and |so |also |now )?(?:have|has|do|does|did|are|is|were|was|any|ever|how|what|when|"
    r"would|could|can)\b"
)

# The words a model's RISK note must find in the utterance it cites (looser than the
# disclosure patterns: the model's value is the phrasings they miss).
CATEGORY_WORDS: dict[RiskCategory, re.Pattern[str]] = {
    RiskCategory.suicidal_ideation: re.compile(
        r"\bsuicid\w*|\b(?:want|wanted|wish|ready) to die\b|\bkill (?:myself|me)\b|"
        r"\bend (?:it|it all|my life|things)\b|\bbetter off\b|\bnot (?:be|being) (?:here|around|"
        r"alive)\b|\b(?:never|not) wake up\b|\bno point\b|\bburden\b|\bdisappear\b|"
        r"\bnot worth\b|\bgive up on (?:life|everything)\b|\bcant go on\b"
    ),
    RiskCategory.self_harm: re.compile(
        r"\b(?:cut|cuts|cutting|burn|burning|scratch\w*|hurt|hurting|harm|harming|hit|hitting)"
        r"(?: \w+)? (?:myself|my (?:arms?|legs?|wrists?|skin|thighs?|head))\b|\bself ?harm\w*|"
        r"\boverdos\w*|\btoo many (?:pills|tablets)\b|\bcutting\b"
    ),
    RiskCategory.harm_to_others: re.compile(
        r"\b(?:hurt|kill|hit|punch|stab|attack|shoot|strangle|beat)\w* (?:him|her|them|someone|"
        r"somebody|anyone|people|my \w+|that \w+)\b|\brevenge\b|\bweapon\b|\bgun\b|\bknife\b"
    ),
    RiskCategory.abuse_neglect: re.compile(
        rf"\b{_BLOWS} (?:me|us)\b|\babus\w*|\b(?:afraid|scared) of (?:him|her|them|my \w+)\b|"
        r"\bbruises?\b|\bmolest\w*|\braped?\b|\bthreaten\w* (?:me|us|to)\b|\bneglect\w*|"
        r"\bnot safe\b"
    ),
}

_NEGATORS = frozenset(
    re.findall(
        r"\w+",
        "no not never nothing none nobody neither nor dont didnt doesnt havent hasnt hadnt "
        "wont wouldnt isnt arent wasnt werent cannot",
    )
)
_NEGATION_REACH = 5  # words before a match that can negate it ("I have never thought about ...")
_CLAUSE = re.compile(r"[.!?;:,\u2014]+|\s-\s|\bbut\b|\bthough\b|\bexcept\b", re.IGNORECASE)
ASSUMED_NORMAL = re.compile(
    r"\bden(?:y|ies|ied|ying)\b|\bno (?:current |acute |immediate |known |apparent )?"
    r"(?:risk|concerns?|safety concerns?|si|hi|sh|evidence|signs?|indications?|history|"
    r"suicidal|homicidal|self.harm|thoughts? of)\b|\bwithin normal limits\b|\bwnl\b|"
    r"\bnot (?:at|a) risk\b|\blow risk\b|\bnegative for\b|\bnot suicidal\b|\bnot homicidal\b|"
    r"\bcontracts? for safety\b|\bsafety contract\b|\b(?:is|was|appears|appeared|seems|seemed|"
    r"remains|remained|feels) safe\b|\bunremarkable\b|\bnothing (?:of )?concern",
    re.IGNORECASE,
)
_RISK_TOPIC = re.compile(
    r"\bsuicid\w*|\bself.?harm\w*|\b(?:end|ending|take|taking) (?:his|her|their|my) "
    r"(?:own )?life\b|\bkill\w* (?:him|her|them)sel\w*|\bhurt\w* (?:him|her|them|others|"
    r"anyone)|\babus\w*|\bneglect\w*|\bviolen\w*|\bcutting\b|\bwant\w* to die\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(
    r"\b(?:no|not|never|nothing|none|without|denies|denied|n't)\b|n't\b", re.IGNORECASE
)
# A RISK note's category from its text (the model words it freely), most specific first.
_CATEGORY = (
    (r"suicid|\bdie\b|\blife\b|kill (?:my|him|her|them)sel", RiskCategory.suicidal_ideation),
    (r"\bself\b|self.harm|\bcut|hurt (?:my|him|her|them)sel", RiskCategory.self_harm),
    (r"abus|neglect|domestic|assault|\bhit me\b|\bsafe\b", RiskCategory.abuse_neglect),
    (r"\bothers?\b|violen|homicid|\bhurt|\bkill", RiskCategory.harm_to_others),
)
FLAG_NOTE = "Raised in the session; review the linked utterances."
SCREENED_NOTE = "Asked about in the session; see the linked question and answer."
MENTIONED_NOTE = "Came up in the session; see the linked utterances."


def plain(text: str) -> str:
    """The normalisation of `appliance.chat.safety`: lower case, apostrophes removed, anything
    but letters, digits and "*" turned into single spaces."""
    text = text.lower().replace("\u2019", "").replace("\u2018", "").replace("'", "")
    return " ".join(re.sub(r"[^\w*]+|_", " ", text).split())


def clauses(text: str) -> list[str]:
    """The text cut at punctuation and contrast words, each piece normalised: a negation
    reaches only as far as its own clause ("No, but I want to die" still fires)."""
    return [piece for piece in (plain(p) for p in _CLAUSE.split(text)) if piece]


def _negated(clause: str, start: int) -> bool:
    before = clause[:start].split()[-_NEGATION_REACH:]
    return any(word in _NEGATORS for word in before)


def matches(text: str, patterns: Iterable[re.Pattern[str]]) -> str | None:
    """'raised' when a pattern matches a clause without a negation before it, 'negated' when
    every match is negated, None when nothing matches."""
    found = None
    for clause in clauses(text):
        for pattern in patterns:
            for match in pattern.finditer(clause):
                if not _negated(clause, match.start()):
                    return "raised"
                found = "negated"
    return found


def is_question(text: str) -> bool:
    return "?" in text or any(_QUESTION_OPENING.search(c) for c in clauses(text))


def confirms(category: RiskCategory, line: Line) -> bool:
    """Whether a model's RISK note citing `line` may stand: the patient's words, carrying the
    category's words, not negated."""
    if line.speaker == THERAPIST:
        return False
    return matches(line.text, (CATEGORY_WORDS[category], *DISCLOSURES[category])) == "raised"


def _answer(lines: Sequence[Line], question: int) -> int | None:
    """The reply to the screening question at `question`: the next utterance, if another
    speaker says it."""
    if question + 1 < len(lines) and lines[question + 1].speaker != lines[question].speaker:
        return question + 1
    return None


def assess(
    lines: Sequence[Line], model_flags: Mapping[RiskCategory, Iterable[int]] | None = None
) -> tuple[RiskFinding, ...]:
    """One finding per category, in `RiskCategory` order. `model_flags` are the utterance
    indexes (0-based) the model's RISK notes cited, already checked with `confirms`."""
    flagged: dict[RiskCategory, set[int]] = {c: set() for c in RiskCategory}
    mentioned: dict[RiskCategory, set[int]] = {c: set() for c in RiskCategory}
    screened: dict[RiskCategory, set[int]] = {c: set() for c in RiskCategory}
    for index, line in enumerate(lines):
        # A screening question from a speaker whose role is unknown is the therapist's too.
        if line.speaker != PATIENT and is_question(line.text):
            text = plain(line.text)
            asked = [c for c, pattern in SCREENING.items() if pattern.search(text)]
            for category in asked:
                answer = _answer(lines, index)
                screened[category].update(i for i in (index, answer) if i is not None)
            if asked:
                continue
        # A line attributed to the therapist is checked for first-person suicidal or
        # self-harm words only: if roles were swapped, a disclosure must not go unflagged.
        categories = DISCLOSURES
        if line.speaker == THERAPIST:
            if not _FIRST_PERSON.search(plain(line.text)):
                continue
            categories = _SWAPPED_ROLE_CHECK
        for category, patterns in categories.items():
            outcome = matches(line.text, patterns)
            if outcome == "raised":
                flagged[category].add(index)
            elif outcome == "negated":
                mentioned[category].add(index)
    for category, indexes in (model_flags or {}).items():
        flagged[category].update(indexes)
    findings = []
    for category in RiskCategory:
        if flagged[category]:
            status, note, indexes = RiskStatus.flagged, FLAG_NOTE, flagged[category]
        elif screened[category]:
            status, note = RiskStatus.discussed, SCREENED_NOTE
            indexes = screened[category] | mentioned[category]
        elif mentioned[category]:
            status, note, indexes = RiskStatus.discussed, MENTIONED_NOTE, mentioned[category]
        else:
            findings.append(RiskFinding(category, RiskStatus.not_assessed))
            continue
        findings.append(RiskFinding(category, status, note, _sources(lines, indexes)))
    return tuple(findings)


def _sources(lines: Sequence[Line], indexes: set[int]) -> tuple[Source, ...]:
    return tuple(lines[i].source for i in sorted(indexes))


def assumed_normal(text: str) -> bool:
    """Wording that asserts an unassessed normal, or a risk topic only to negate it."""
    if ASSUMED_NORMAL.search(text):
        return True
    return bool(_RISK_TOPIC.search(text) and _NEGATION.search(text))


def category_of(text: str) -> RiskCategory | None:
    """The category a model's RISK note names, however it words it."""
    for pattern, category in _CATEGORY:
        if re.search(pattern, text, re.IGNORECASE):
            return category
    return None
