"""What the patient chat must not answer: crisis language, and questions outside its scope.

Both checks run on the patient's question before retrieval or any model sees it: regular
expressions over normalised text, deterministic and impossible to talk round, which a small
model is not. The pattern lists are data (module-level tuples of (id, compiled regex)), English
only for now; another language needs its own lists. A match reports its category and pattern
id, never the text, so logs and the audit trail say why without repeating the patient's words.

Crisis (`detect_crisis`) errs towards firing: a false positive shows a kind crisis text to
someone who did not need it; a false negative leaves someone at risk with a chatbot. So any
mention of suicide fires ("the film was about suicide prevention", "what did we say about my
suicidal thoughts?"), and "kill/hurt/cut myself" fire whatever follows. Idiom is spared only
where its form is unambiguous: "kill time", "killing it at work", "dying to see", "cut down on
coffee", "hurt my knee", "the homework killed me", and "X will kill me" (something else doing
the killing is hyperbole; only self-directed "kill myself" fires). "kms" fires unless it
follows a number ("5 kms").

Scope (`detect_out_of_scope`) is narrower on purpose: the appliance retrieves what was said in
the patient's own sessions, so asking what was said is in scope even about medication or a
diagnosis ("What did we say about my medication last week?", "Did my therapist say I have
PTSD?"): the answer is grounded in, and cited to, the therapist's own words. A sentence is out
of scope when it asks the appliance itself for a diagnosis, medication advice or a clinical
judgement; each sentence is judged alone, so "What did we say about my sertraline? Should I
stop it?" is still redirected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class CrisisCategory(StrEnum):
    suicide = "suicide"
    self_harm = "self_harm"
    harm_to_others = "harm_to_others"


class ScopeCategory(StrEnum):
    diagnosis = "diagnosis"
    medication = "medication"
    clinical_judgement = "clinical_judgement"


@dataclass(frozen=True)
class CrisisMatch:
    category: CrisisCategory
    pattern_id: str  # safe to log: names the rule, never repeats the patient's words


@dataclass(frozen=True)
class ScopeMatch:
    category: ScopeCategory
    pattern_id: str


Patterns = tuple[tuple[str, re.Pattern[str]], ...]


def _patterns(regexes: dict[str, str]) -> Patterns:
    return tuple((pattern_id, re.compile(regex)) for pattern_id, regex in regexes.items())


# Building blocks, written against normalised text: lower case, apostrophes removed ("im",
# "dont"), anything but letters, digits, "*" and spaces turned into single spaces.
_ME = r"my ?s[e]?l?f"  # "myself", "my self", misspelt "mysef"
_ADV = r"(?:(?:just|really|honestly|actually|seriously|sometimes|kind of|kinda|so|even) )*"
_INTENT = (
    r"(?:want|wanna|going|gonna|plan|planning|about|ready|tempted|urge|urges|could|will|ill|"
    r"thinking about|think about|thought about|thoughts of|thoughts about|fantasi[sz]e about|"
    r"fantasi[sz]ing about|would like|need|have to)"
)
_RELATION = (
    r"(?:boss|manager|husband|wife|partner|spouse|boyfriend|girlfriend|bf|gf|ex|fianc[e]{1,2}|"
    r"mom|mum|mother|dad|father|parents?|step ?(?:mom|mum|dad|father|mother)|brother|sister|"
    r"son|daughter|kids?|child|children|baby|family|friend|roommate|flatmate|neighbou?r|"
    r"co ?worker|colleague|teacher|uncle|aunt|cousin|grand(?:ma|pa|mother|father)|landlord|"
    r"therapist|doctor|classmate|teammate|in laws)"
)
_PERSON = (
    rf"(?:him|her|them|someone|somebody|anyone|anybody|people|everyone|everybody|others|"
    rf"other people|you|that (?:guy|man|woman|girl|boy|person)|"
    rf"(?:my|his|her|their|our|the|that) {_RELATION}s?)"
)
_NOT_AN_OBJECT = r"(?! (?:a|an|some)\b)(?! feelings)"  # "shoot him a text", "hurt her feelings"

_SUICIDE = {
    "suicide_word": r"\bsu[ia]?[cs]+i?d(?:e|es|al|le|el|ality)?\b|\bs[u*][i1*]c[i1*]d[e3]\b",
    "suicide_slang": (
        rf"\bun ?aliv(?:e|ed|ing)\b(?! {_PERSON})|\bsewer ?slide\b|(?<!\d)(?<!\d )\bkms\b"
    ),
    "kill_self": (
        rf"\b(?:kil+|off|hang|shoot|drown|gas|poison|electrocute)(?:s|ing|ed)? {_ME}\b"
        r"(?! in the foot)"
    ),
    "end_life": (
        r"\bend(?:ing|ed)? (?:it all|my (?:own )?life|everything|things for good)\b|"
        r"\b(?:take|taking|took) my (?:own )?life\b"
    ),
    "want_die": (rf"\b(?:want|wanna|wish|ready|plan|planning|deserve) {_ADV}(?:to )?{_ADV}die\b"),
    "wish_dead": rf"\bwish {_ADV}i (?:was|were|could be|would|could) {_ADV}(?:dead|die)\b",
    "never_born": r"\b(?:wish|if) (?:i had|id|i) never been born\b",
    "not_be_here": (
        r"\b(?:dont|do not|no longer|never) (?:want|wanna)(?: to)? (?:be (?:here|alive|around)|"
        r"exist|go on|keep living|(?:live|wake up)\b(?! (?:with|in|at|near|there|alone|"
        r"together|abroad|on|by|early|before|for|so|tomorrow)\b))\b"
    ),
    "better_off": (
        r"\bbetter off (?:without me|dead|if i (?:was|were|wasnt|werent|died|didnt exist|"
        r"wasnt here|werent here|was gone|were gone|was dead|were dead))\b"
    ),
    "no_reason": (
        r"\b(?:no|any) reasons? (?:to|for) (?:live|living|go on|stay alive|keep going)\b|"
        r"\bnothing (?:left )?to live for\b|\bnot worth living\b|\bisnt worth living\b|"
        r"\b(?:no|whats the|what is the|dont see the) point (?:in |of )?(?:living|being alive|"
        r"going on|life)\b"
    ),
    "never_wake": (
        r"\b(?:sleep|asleep) (?:and|n) (?:never|not) wake up\b|\b(?:never|not) wake up again\b|"
        r"\b(?:hope|wish) i (?:dont|do not|never|wont|will not|would not|wouldnt) wake up\b"
    ),
    "disappear": r"\bdisappear (?:forever|for good|permanently)\b|\bcant go on living\b",
    "method": (
        r"\bjump(?:ing)? (?:off|from) (?:a|the) (?:bridge|building|roof|cliff|balcony)\b|"
        r"\b(?:jump|step|walk)(?:ing)? in front of (?:a|the) (?:train|bus|car|truck)\b|"
        r"\bslit(?:ting)? my wrists?\b"
    ),
}

_SELF_HARM = {
    "self_harm_word": r"\bself ?(?:harm\w*|injur\w*|mutilat\w*)\b",
    "hurt_self": rf"\b(?:hurt|harm|injure|cut|burn|hit|punch|scratch|starve)\w* {_ME}\b",
    "cut_body": r"\bcut\w* (?:my|on my) (?:arms?|wrists?|legs?|thighs?|skin|stomach|body)\b",
    "cutting": (
        r"\bcutting again\b|\b(?:been|started|start|keep|kept|back to|relapsed)(?: and)? "
        r"cutting\b(?! (?:back|down|out|off|up|in|through|corners|ties|class|the|a|an|"
        r"my hair))"
    ),
    "overdose": (
        r"\boverdos\w*\b|\bod(?:ed|d)? on\b|"
        r"\b(?:took|take|taking|swallowed?) (?:too many|all (?:of )?(?:my|the|these|those)) "
        r"(?:pills|tablets|meds|medications?|sleeping pills|painkillers)\b|"
        r"\b(?:pills|tablets|meds) on purpose\b"
    ),
}

_HARM_TO_OTHERS = {
    "homicidal": r"\bhomicid\w*\b|\bshoot up (?:the|a|my) \w+\b",
    "kill_person": (
        rf"\b(?:kill|murder|stab|shoot|strangle|choke|poison|smother|unalive)\w* "
        rf"{_PERSON}\b{_NOT_AN_OBJECT}"
    ),
    "hurt_person": (
        rf"\b{_INTENT}(?: to)? {_ADV}(?:hurt|harm|hit|beat|attack|punch|kick|strangle|"
        rf"choke|stab|shoot|kill|murder)\w* (?:up )?{_PERSON}\b{_NOT_AN_OBJECT}"
    ),
}

CRISIS_PATTERNS: dict[CrisisCategory, Patterns] = {
    CrisisCategory.suicide: _patterns(_SUICIDE),
    CrisisCategory.self_harm: _patterns(_SELF_HARM),
    CrisisCategory.harm_to_others: _patterns(_HARM_TO_OTHERS),
}


def _normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "").replace("\u2018", "").replace("'", "")
    return " ".join(re.sub(r"[^\w*]+|_", " ", text).split())


def detect_crisis(text: str) -> CrisisMatch | None:
    """The first crisis pattern the text matches (suicide, then self-harm, then harm to
    others), or None. A match bypasses the model: the clinic's crisis text is shown and the
    therapist alerted."""
    plain = _normalise(text)
    for category, patterns in CRISIS_PATTERNS.items():
        for pattern_id, pattern in patterns:
            if pattern.search(plain):
                return CrisisMatch(category, pattern_id)
    return None


# A sentence that asks what was said, discussed or agreed in a session: retrieval, in scope.
# Past tense only: "what did you say about ..." recalls a session; "what do you say" asks the
# appliance for its own view.
_SAYING = (
    r"(?:say|discuss|talk|mention|agree|decide|cover|go over|suggest|recommend|tell|explain|"
    r"bring up|plan|note|share|write down|ask)"
)
_SPEAKERS = r"(?:we|you|i|my therapist|the therapist|she|he|they|dr \w+)"
RECALL = re.compile(
    rf"\b(?:what|when|where|how|which|why)(?: \w+){{0,3}} (?:did|have|has|had) {_SPEAKERS}"
    rf"(?: ever| already| last)? {_SAYING}|"
    rf"^(?:and |so |but )?(?:did|have|has|had) {_SPEAKERS}(?: ever| already)? {_SAYING}\b|"
    r"\bremind me (?:what|of|about)\b|\bwhat was (?:said|discussed|agreed|decided|suggested)\b"
)

_CONDITION = (
    r"(?:depress\w*|anxiety|an anxiety disorder|bipolar|ptsd|c ?ptsd|adhd|add|ocd|autis\w*|"
    r"aspergers?|bpd|borderline|schizo\w*|psychosis|psychotic|an? eating disorder|anorexi\w*|"
    r"bulimi\w*|insomnia|panic disorder|a personality disorder|dementia|narcissis\w*|npd|gad|"
    r"mdd|dissociative \w+|a mental (?:illness|disorder|health condition)|an? (?:illness|"
    r"disorder|condition)|trauma|burnout|a panic attack|panic attacks|an addiction|addict\w*|"
    r"alcoholi\w*|mania|manic|crazy|mentally ill)"
)
_MEDICINE = (
    r"(?:medications?|medicines?|meds|pills?|tablets?|doses?|dosages?|prescriptions?|"
    r"antidepressants?|antipsychotics?|ssris?|snris?|benzos?|benzodiazepines?|sleeping pills|"
    r"sertraline|zoloft|fluoxetine|prozac|citalopram|celexa|escitalopram|lexapro|paroxetine|"
    r"paxil|venlafaxine|effexor|duloxetine|cymbalta|bupropion|wellbutrin|mirtazapine|remeron|"
    r"trazodone|amitriptyline|lithium|lamotrigine|lamictal|quetiapine|seroquel|aripiprazole|"
    r"abilify|olanzapine|risperidone|depakote|valproate|xanax|alprazolam|valium|diazepam|"
    r"ativan|lorazepam|klonopin|clonazepam|adderall|ritalin|methylphenidate|vyvanse|concerta|"
    r"zolpidem|ambien|melatonin|propranolol|buspirone|hydroxyzine|gabapentin|pregabalin)"
)

_DIAGNOSIS = {
    "have_condition": (
        rf"\b(?:do|could|might|may|would|think|possible|likely|like) (?:that )?i "
        rf"(?:might |may |could )?(?:have|suffer from|be suffering from|be|am|qualify for|"
        rf"meet the criteria for) {_CONDITION}\b"
    ),
    "am_i_condition": rf"\bam i {_ADV}(?:a |an )?{_CONDITION}\b",
    "is_this_condition": (
        rf"\bis (?:this|it|that|what i have) (?:a sign of |a symptom of )?{_CONDITION}\b"
    ),
    "my_diagnosis": (
        r"\b(?:whats|what is|tell me) my diagnos[ie]s\b|\bdiagnos(?:e|is|ed) me\b|"
        r"\bcan you diagnose\b|\bwhat (?:do i have|is wrong with me|s wrong with me)\b|"
        r"\bwhats wrong with me\b|\bdoes (?:this|it|that) sound like\b|"
        r"\bshould i (?:get )?(?:tested|assessed|screened|evaluated) for\b"
    ),
}

_MEDICATION = {
    "medicine_advice": (
        rf"\b(?:should|can|could|may|must|do|would) i\b.*\b{_MEDICINE}\b|"
        rf"\b{_MEDICINE}\b.*\b(?:should|can|could|may|must) i\b"
    ),
    "medicine_safety": (
        rf"\b(?:is it|is that|would it be|its) (?:ok|okay|safe|bad|dangerous|fine|alright)\b"
        rf".*\b{_MEDICINE}\b|\b(?:what|which) {_MEDICINE}\b|"
        rf"\bhow (?:much|many)\b.*\b{_MEDICINE}\b|"
        rf"\b{_MEDICINE}\b.*\b(?:side effects?|interact\w*|with alcohol|safe|work for me)\b"
    ),
    "drink_on": (rf"\b(?:drink|drinking|alcohol|smoke|weed) (?:on|with|while on) {_MEDICINE}\b"),
}

_JUDGEMENT = {
    "progress": (
        r"\bam i (?:getting|doing|feeling) (?:any )?(?:better|worse|well|ok|okay|alright)\b|"
        r"\bam i (?:improving|making (?:any )?progress|recovering|on track)\b|"
        r"\bhow am i doing\b|\bis (?:my )?(?:therapy|treatment) working\b"
    ),
    "need_therapy": (
        r"\bdo i (?:still |really )?need (?:therapy|treatment|to keep (?:coming|going)|"
        r"more sessions|to see a (?:psychiatrist|therapist))\b|\bshould i (?:stop|quit|end|"
        r"keep|continue|leave) (?:therapy|treatment|my sessions|seeing my therapist)\b"
    ),
    "second_opinion": (
        r"\bis (?:my therapist|she|he|they) (?:right|wrong|correct)\b|"
        r"\b(?:was|were) (?:my therapist|she|he) (?:right|wrong)\b|"
        r"\bdo you agree with (?:my therapist|her|him)\b"
    ),
    "life_decision": (
        r"\bshould i (?:leave|divorce|break up|dump|marry|forgive|confront|cut off|move out|"
        r"stop (?:talking to|seeing)|tell my|quit my|report|have (?:a baby|kids))\b|"
        r"\bwhat (?:would you do|do you think i should)\b"
    ),
    "normal_or_fault": (
        r"\bis (?:it|this|that) normal\b|\bam i (?:normal|overreacting|a bad \w+|to blame)\b|"
        r"\b(?:is|was) it my fault\b|\bis (?:he|she|my \w+) (?:a narcissist|abusive|toxic)\b"
    ),
}

SCOPE_PATTERNS: dict[ScopeCategory, Patterns] = {
    ScopeCategory.diagnosis: _patterns(_DIAGNOSIS),
    ScopeCategory.medication: _patterns(_MEDICATION),
    ScopeCategory.clinical_judgement: _patterns(_JUDGEMENT),
}


# "Should I stop (it)?", "can I double ...", in a message that names a medicine, asks about it.
_MEDICINE_NAMED = re.compile(rf"\b{_MEDICINE}\b")
_DOSE_CHANGE = re.compile(
    r"\b(?:should|can|could|may|must) i (?:stop|start|quit|skip|come off|get off|go off|wean|"
    r"taper|reduce|lower|increase|raise|double|halve|change|switch|keep taking|mix|drink)\b"
)


def detect_out_of_scope(text: str) -> ScopeMatch | None:
    """The first request for a diagnosis, medication advice or clinical judgement in any
    sentence of the text that does not ask what was said in a session, or None."""
    medicine = bool(_MEDICINE_NAMED.search(_normalise(text)))
    for sentence in re.split(r"[.?!;\n\u2014]+| - ", text):
        plain = _normalise(sentence)
        if not plain or RECALL.search(plain):
            continue
        if medicine and _DOSE_CHANGE.search(plain):
            return ScopeMatch(ScopeCategory.medication, "medicine_change")
        for category, patterns in SCOPE_PATTERNS.items():
            for pattern_id, pattern in patterns:
                if pattern.search(plain):
                    return ScopeMatch(category, pattern_id)
    return None


_REDIRECTS = {
    ScopeCategory.diagnosis: "That's a question for your therapist \u2014 I can share what was "
    "said in your sessions, but I can't give a diagnosis.",
    ScopeCategory.medication: "Please ask your therapist or the doctor who prescribes your "
    "medication \u2014 I can't advise on medicines or doses. If you feel unwell now, contact "
    "your doctor or pharmacist.",
    ScopeCategory.clinical_judgement: "That's a good one to bring to your therapist \u2014 I can "
    "share what was said in your sessions, but I can't judge how you're doing or what to decide.",
}


def redirect_text(category: ScopeCategory) -> str:
    """A kind, short redirect to the therapist: the patient asked a fair question, just not
    one a retrieval tool should answer."""
    return _REDIRECTS[category]
