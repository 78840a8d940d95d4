"""Lexical matching (BM25) over a patient's decrypted passages, and reciprocal rank fusion.

Small embedding models blur exactly what patients ask about most precisely: names ("what did
I say about Priyanka?"), numbers ("the 4-7-8 breathing") and rare words. Chunk text is
encrypted, so PostgreSQL's full-text search cannot see it; one patient owns a few thousand
chunks at most, so ranking them in memory after decryption is cheap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
# Words that say nothing about which passage answers: function words, and the words every
# question to this appliance shares ("session", "therapist").
_STOPWORDS = """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i i'm if in into
    is it it's its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours
    yourself yourselves what's did didn't don't we're you're i've we've let's us tell say said
    talk talked discuss discussed session sessions therapist patient mention mentioned"""
STOPWORDS = frozenset(_STOPWORDS.split())


def tokens(text: str) -> list[str]:
    """Lower-cased words and numbers, without stopwords ("4-7-8" -> "4", "7", "8")."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


def bm25_ranking(query: str, documents: Sequence[str]) -> list[int]:
    """Indices of `documents` that share a word with `query`, best BM25 score first."""
    from rank_bm25 import BM25Okapi

    wanted = tokens(query)
    corpus = [tokens(doc) for doc in documents]
    if not wanted or not any(corpus):
        return []
    scores = BM25Okapi(corpus).get_scores(wanted)
    query_words = set(wanted)
    matching = [i for i, words in enumerate(corpus) if query_words.intersection(words)]
    return sorted(matching, key=lambda i: (-scores[i], i))


def fuse(rankings: Sequence[Sequence[int]], k: int = 60) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: (item, sum of 1 / (k + rank)) best first; ties keep the
    order of the first ranking."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    first = {item: i for i, item in enumerate(rankings[0])} if rankings else {}
    return sorted(scores.items(), key=lambda pair: (-pair[1], first.get(pair[0], len(first))))


def best_line(query: str, text: str, limit: int = 300) -> str:
    """The line (speaker turn) of a passage sharing most words with the query, followed by the
    next turn while they fit (a question's answer is often the reply to the line that names
    it), shortened to about `limit` characters at a word boundary: what a citation shows."""
    wanted = set(tokens(query))
    lines = [line for line in text.splitlines() if line.strip()] or [text]
    scores = [len(wanted.intersection(tokens(line))) for line in lines]
    best = scores.index(max(scores))
    excerpt = lines[best]
    if best + 1 < len(lines) and len(excerpt) < limit // 2:
        excerpt += " " + lines[best + 1]
    if len(excerpt) <= limit:
        return excerpt
    return excerpt[:limit].rsplit(" ", 1)[0] + " …"
