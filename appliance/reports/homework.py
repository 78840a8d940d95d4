"""Homework in a drafted report: what the therapist asked the patient to do between sessions,
as structured items (what, how often, by when), each linked to the utterance that assigned it.

The therapist approves every item, so a wrong one costs them time: precision matters as much
as recall. A 0.5B model garbles homework (it copies a question as a "task", or the worked
example's tasks), so the appliance finds the assignments itself: a therapist's sentence that
asks the patient to do something (`I'd like you to ...`, `please ...`, `for homework ...`, or
an imperative) and places it between sessions (`every morning`, `three times this week`,
`before our next session`, `this week`). A strong request (`I'd like you to`, `homework`)
needs no time cue unless its verb is one done in the room (`tell me`, `imagine`). Requests made
for right now (`let's try it now`), the therapist's own tasks (`I'll call you`), plans for
later sessions (`next time we'll ...`) and emergency instructions (`call the crisis line`) are
not homework. The model's HOMEWORK notes add an item only where the utterance they cite is
such a request (`model_item`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.chat.grounding import stem
from appliance.reports.document import HomeworkItem, Line
from appliance.retrieval.lexical import tokens

PATIENT = "patient"  # any other speaker (the therapist, an unassigned label) may assign
MAX_WHAT_WORDS = 12

_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_PART = r"(?:day|morning|evening|night|afternoon|weekday|week|time|session|meal|" + _WEEKDAY + ")"
_COUNT = r"(?:once|twice|two times|three times|four times|five times|\d+ times|a few times)"
OFTEN = re.compile(
    rf"\b(?:every|each) (?:other |single )?{_PART}s?\b(?: (?:and|or) (?:every |each )?{_PART}s?)?|"
    rf"\b{_COUNT} (?:a|per|this|each|every|over the) (?:day|week|weekend|night|evening|"
    rf"morning|month)\b|"
    r"\b(?:on )?(?:one|two|three|four|five|six|\d+|a few) (?:days|evenings|mornings|nights) "
    r"(?:this|a|per|next) week\b|"
    r"\bon (?:one|two|three|four|five|six|\d+) (?:days|evenings|mornings|nights)\b|"
    r"\b(?:daily|nightly|weekly)\b|\bwhenever [^,.;:]+|\bevery time [^,.;:]+|"
    r"\b(?:morning and evening|mornings and evenings)\b|"
    r"\bbefore (?:bed|bedtime|you go to (?:bed|sleep))\b|\bat bedtime\b",
    re.IGNORECASE,
)
DUE = re.compile(
    rf"\b(?:before|by|until|till) (?:our |the |your )?(?:next (?:session|appointment|time|week|"
    rf"{_WEEKDAY})|session next {_WEEKDAY}|next {_WEEKDAY}|{_WEEKDAY}|we (?:meet|see each other)"
    rf"(?: again| next)?(?: on {_WEEKDAY}| next week)?|the end of the week|the weekend)\b|"
    r"\bbetween (?:now and |this and )?(?:our |the )?next (?:session|week|time|appointment)\b|"
    r"\b(?:to|for) (?:our |the )?next (?:session|appointment|time)\b|"
    r"\bthis (?:coming )?week\b|\bover the (?:next|coming) (?:week|few days|two weeks)\b",
    re.IGNORECASE,
)
# Asking the patient plainly to do something; weaker asks ("please", "could you", an
# imperative) need a time cue as well (`request_kind`).
STRONG_REQUEST = re.compile(
    r"\b(?:i(?:d| would)? (?:like|want) you to|i(?:d| would) (?:also )?like you to|your homework|"
    r"for homework|as homework|homework (?:is|for)|your task|the task (?:is|for)|"
    r"i(?:d| would) (?:ask|encourage) you to|my suggestion|here(?:s| is) (?:my|what))\b",
    re.IGNORECASE,
)
_TASK_VERB = (
    r"(?:keep|write|go|do|try|practi[cs]e|start|stand|call|text|pack|agree|read|fill|complete|"
    r"make|take|use|set|plan|schedule|spend|listen|track|log|record|note|walk|run|visit|ask|"
    r"bring|put|find|list|notice|check|rate|count|add|continue|carry on|stick|limit|avoid|stop|"
    r"get|eat|drink|sleep|leave|tell|talk|think|look|reach out|join|book|sign up|watch|"
    r"meditate|journal|exercise|follow|review|repeat|work on|pick|choose|give|send|buy|cook|"
    r"clean|prepare|share|remind|let)"
)
# Done in the room, not between sessions, when no time cue says otherwise.
IN_SESSION_VERB = re.compile(
    r"^(?:tell|describe|say|explain|imagine|close|picture|breathe|take a (?:breath|moment|"
    r"minute|second)|think about (?:that|this|it)|know|feel|look at (?:me|this)|sit|stay with|"
    r"remember|be |notice what|walk me|show me|give me|let me|talk about (?:that|this|it))",
    re.IGNORECASE,
)
NOT_HOMEWORK = re.compile(
    r"\b(?:right now|for a moment|for a minute|with me now|here with me|together now|"
    r"together today|today together|lets (?:try|do|practi[cs]e|write)|we can do that now)\b|"
    r"\b(?:crisis line|emergency|911|999|112|ambulance|helpline)\b|"
    r"^(?:and |so |also )?(?:i(?:ll| will| can| am going to)|we(?:ll| will| can| are going to)|"
    r"next (?:time|week|session) we)\b",
    re.IGNORECASE,
)
_REQUEST_TAIL = re.compile(
    r"(?:\S+\s+){0,8}?\b(?:i(?:d| would)? (?:also )?(?:like|want) you to|"
    r"(?:your )?homework(?: \w+){0,3} is(?: to)?|your task is to|the task is to|"
    r"for homework,?|as homework,?|"
    r"please|try to|"
    r"(?:can|could|would|will) you(?: please)?(?: try to)?|you (?:could|can|should|might)|"
    r"i suggest(?: that)?(?: you)?|lets have you|i(?:d| would) (?:ask|encourage) you to|"
    # "Let's keep the walks": carrying on between sessions ("let's try it" is in the room).
    r"(?:lets|let us) (?:also )?(?=(?:keep|continue|carry on|stick|add)\b))\s*",
    re.IGNORECASE,
)
_LEAD = re.compile(
    r"^(?:(?:and|so|also|now|then|first|next|second|third|and also|okay|ok|good|great|yes)"
    r"[ ,:]+)*(?:the (?:first|second|third|other|last) thing[ ,:]+)?",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|:\s+(?=[A-Z])")
# "Let's keep the walks": carrying an earlier task on needs no new time cue.
_CARRY_ON = re.compile(r"^(?:lets|let us) (?:also )?(?:keep|continue|carry on|stick with)\b", re.I)
# "... and add five minutes of breathing before bed": a second task in the same sentence.
_BACK_REFERENCE = re.compile(r"^(?:also )?\w+(?: \w+)? (?:it|them|that|this|those|me|us)\b", re.I)
_AND_TASK = re.compile(rf",?\s+and (?=(?:also )?{_TASK_VERB}\b)", re.IGNORECASE)


@dataclass(frozen=True)
class Assignment:
    """One task found in a therapist's sentence."""

    what: str
    how_often: str | None
    due: str | None


def _plain(text: str) -> str:
    return text.replace("\u2019", "'").replace("'", "").strip()


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(" ".join(text.split())) if s.strip()]


def _phrase(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.search(_plain(text))
    return " ".join(found.group().split()).rstrip(" ,") if found else None


def _due(phrase: str | None) -> str | None:
    """'until our session next Tuesday' -> 'next Tuesday'; 'before our next session' ->
    'next session'; 'this week' stays."""
    if phrase is None:
        return None
    short = re.sub(
        r"^(?:before|by|until|till|to|for|over|between (?:now|this) and|between)\s+"
        r"(?:our |the |your )?",
        "",
        phrase,
        flags=re.IGNORECASE,
    )
    short = re.sub(r"^session (next \w+)", r"\1", short, flags=re.IGNORECASE)
    if not re.match(_WEEKDAY, short, re.IGNORECASE):
        short = short[:1].lower() + short[1:]  # "Over the next week" -> "next week"
    if re.match(r"we (?:meet|see each other)", short, re.IGNORECASE):
        return "next session"
    return short or phrase


# What may come before the imperative: "Every night, start ...", "For next time, read ...",
# "So the plan for this week: walk ...".
_OPENING_CLAUSE = re.compile(
    r"^(?:(?:every|each|whenever|when|if|once|after|before|during|tonight|tomorrow|this|"
    r"next|on|in the|for|over|between|until|by|at|from)\b[^,:]{0,60},\s*|[^,:]{0,60}:\s*)",
    re.IGNORECASE,
)
_IMPERATIVE = re.compile(rf"^{_TASK_VERB}\b", re.IGNORECASE)
_GENERIC = re.compile(r"^(?:do|try|go)(?: (?:it|this|that|so|something|some))?$", re.IGNORECASE)


def _opened(text: str) -> str:
    """The text from its task verb on, past discourse words and an opening time clause."""
    text = _LEAD.sub("", text)
    return text if _IMPERATIVE.match(text) else _LEAD.sub("", _OPENING_CLAUSE.sub("", text))


def _strip_request(text: str) -> tuple[str, bool]:
    """The sentence after its request words ("So for homework, I'd like you to stand ..." ->
    "stand ..."), and whether there were any."""
    found = _REQUEST_TAIL.match(text)
    if found is None:
        return text, False
    text = text[found.end() :]
    # "For homework, I'd like you to ...": a second request right after the first.
    again = _REQUEST_TAIL.match(text)
    if again is not None and not _IMPERATIVE.match(text):
        text = text[again.end() :]
    # "What I'd like you to do is write ..."
    text = re.sub(r"^do(?: \w+){0,3} is(?: to)?\s+", "", text, flags=re.IGNORECASE)
    return text, True


def _clause(text: str) -> str:
    """The task clause: cut at the first clause break once it has a few words, without its
    time phrases, at most `MAX_WHAT_WORDS` words."""
    for pattern in (OFTEN, DUE):
        text = pattern.sub(" ", text)
    text = re.sub(r"^[\s,]*(?:and|then|so)\s+", "", " ".join(text.split()), flags=re.IGNORECASE)
    pieces = re.split(r"\s*[,;:(\u2014]\s*|\s+-\s+", text)
    what = ""
    for piece in pieces:
        what = f"{what}, {piece}" if what else piece
        if len(what.split()) >= 3:
            break
    what = " ".join(re.sub(r"[\s,.!?]+$", "", what).split()[:MAX_WHAT_WORDS])
    return what.rstrip(" ,.")


def request_kind(sentence: str) -> str | None:
    """'strong', 'weak' or None: how plainly the sentence asks the patient to do something
    (see the module docstring); None also for requests that are not homework."""
    text = _plain(sentence)
    if NOT_HOMEWORK.search(text):
        return None
    if STRONG_REQUEST.search(text) or _CARRY_ON.match(text):
        return "strong"
    rest, asked = _strip_request(text)
    if asked or _IMPERATIVE.match(_opened(rest)):
        return "weak"
    return None


def assignment(sentence: str) -> Assignment | None:
    """The task a therapist's sentence assigns, or None when it assigns none."""
    kind = request_kind(sentence)
    if kind is None:
        return None
    rest, asked = _strip_request(_plain(sentence))
    rest = _opened(rest)
    if not (asked or _IMPERATIVE.match(rest)):
        return None  # "Here's my suggestion for this week." names the time, not the task
    often, due = _phrase(OFTEN, sentence), _phrase(DUE, sentence)
    if often and due and due.lower() in often.lower():
        due = None  # "three times this week" already says when
    what = _clause(rest)
    if not what or _GENERIC.match(what):
        return None
    if (kind == "weak" or IN_SESSION_VERB.match(what)) and not (often or due):
        return None
    often = often[:1].lower() + often[1:] if often else None
    return Assignment(what[:1].upper() + what[1:], often, _due(due))


def _tasks(sentence: str) -> list[str]:
    """A sentence asking for two things, one request each, both keeping the request's lead:
    "Let's keep the walks and add breathing before bed" -> "Let's keep the walks", "Let's
    add breathing before bed"."""
    text = _plain(sentence)
    found = _REQUEST_TAIL.match(text)
    lead = text[: found.end()] if found else ""
    parts = [p for p in _AND_TASK.split(text[len(lead) :]) if p.strip()]
    if len(parts) < 2:
        return [sentence]
    # Only when each part is a task of its own: "pack a bag, and leave it at Ana's" and
    # "think about who to ask, and tell me" are one task.
    if any(IN_SESSION_VERB.match(p) or _BACK_REFERENCE.match(p) for p in parts[1:]):
        return [sentence]
    split = [lead + part for part in parts]
    return split if all(assignment(part) for part in split) else [sentence]


def detect(lines: Sequence[Line]) -> list[tuple[int, Assignment]]:
    """Every assignment in utterances not the patient's (the therapist's, or a speaker whose
    role diarization could not tell), with the utterance's index. A sentence
    that names only the time ("Here is what I'd like you to do this week.") lends its time to
    the task in the next sentence of the same utterance."""
    found: list[tuple[int, Assignment]] = []
    for index, line in enumerate(lines):
        if line.speaker == PATIENT:
            continue
        carried: str | None = None
        for sentence in (t for s in _sentences(line.text) for t in _tasks(s)):
            task = assignment(sentence)
            if task is None:
                if request_kind(sentence) is not None:
                    carried = _due(_phrase(DUE, sentence)) or carried
                continue
            if task.due is None and carried:
                task = Assignment(task.what, task.how_often, carried)
            found.append((index, task))
    return found


def words(text: str) -> frozenset[str]:
    return frozenset(stem(w) for w in tokens(text))


def same_task(a: str, b: str) -> bool:
    """Two phrasings of one task: most of the shorter one's words are in the longer one."""
    first, second = words(a), words(b)
    if not first or not second:
        return False
    return len(first & second) / min(len(first), len(second)) >= 0.6


def model_item(line: Line, what: str, how_often: str, due: str) -> Assignment | None:
    """A model's HOMEWORK note, kept only if the utterance it cites asks for a task and the
    note's task is in that utterance's words; how often and by when are kept only where the
    utterance says them (else they are read from the utterance itself)."""
    if line.speaker == PATIENT or not any(request_kind(s) for s in _sentences(line.text)):
        return None
    said = words(line.text)
    task = words(what)
    if not task or len(task & said) / len(task) < 0.6:
        return None
    short = " ".join(what.split()[:MAX_WHAT_WORDS]).rstrip(" .")

    def supported(phrase: str) -> str | None:
        got = words(phrase)
        return " ".join(phrase.split()) if got and got <= said else None

    often = supported(how_often) or _phrase(OFTEN, line.text)
    by_when = supported(due) or _due(_phrase(DUE, line.text))
    return Assignment(short[:1].upper() + short[1:], often, by_when)


def merge(
    lines: Sequence[Line], found: Sequence[tuple[int, Assignment]]
) -> tuple[HomeworkItem, ...]:
    """One item per task, in transcript order: the same task from the detector and the model,
    or said twice, becomes one item with every utterance it came from."""
    items: list[tuple[list[int], Assignment]] = []
    for index, task in sorted(found, key=lambda pair: pair[0]):
        for sources, kept in items:
            if same_task(kept.what, task.what):
                if index not in sources:
                    sources.append(index)
                items[items.index((sources, kept))] = (
                    sources,
                    Assignment(kept.what, kept.how_often or task.how_often, kept.due or task.due),
                )
                break
        else:
            items.append(([index], task))
    return tuple(
        HomeworkItem(task.what, task.how_often, task.due, tuple(lines[i].source for i in sources))
        for sources, task in items
    )
