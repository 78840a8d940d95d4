"""The sealed JSON documents of the speech stages: records in, records out.

Stage outputs are stored as one sealed JSON document per (recording, version), so a transcript
is decrypted in one piece and never half-written. Times are rounded to milliseconds.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from appliance.crypto.service import PatientCipher
from appliance.pipeline.align import AlignedWord, Utterance
from appliance.pipeline.roles import SpeakerRole
from appliance.pipeline.speech import Segment, SpeakerTurn, Word


def seal(cipher: PatientCipher, table: str, recording_id: uuid.UUID, document: Any) -> bytes:
    return cipher.seal(table, "body_enc", recording_id, json.dumps(document, separators=(",", ":")))


def open_sealed(cipher: PatientCipher, table: str, recording_id: uuid.UUID, blob: bytes) -> Any:
    return json.loads(cipher.open(table, "body_enc", recording_id, blob))


def _t(seconds: float) -> float:
    return round(float(seconds), 3)


def segments_doc(segments: list[Segment]) -> list[dict[str, Any]]:
    return [
        {
            "start": _t(s.start),
            "end": _t(s.end),
            "text": s.text,
            "words": [[_t(w.start), _t(w.end), w.text, round(w.probability, 4)] for w in s.words],
            "avg_logprob": round(s.avg_logprob, 4),
            "compression_ratio": round(s.compression_ratio, 4),
            "no_speech_prob": round(s.no_speech_prob, 4),
            "low_confidence": s.low_confidence,
            "flags": list(s.flags),
        }
        for s in segments
    ]


def segments_from(doc: list[dict[str, Any]]) -> list[Segment]:
    return [
        Segment(
            start=d["start"],
            end=d["end"],
            text=d["text"],
            words=tuple(Word(*w) for w in d["words"]),
            avg_logprob=d["avg_logprob"],
            compression_ratio=d["compression_ratio"],
            no_speech_prob=d["no_speech_prob"],
            low_confidence=d["low_confidence"],
            flags=tuple(d["flags"]),
        )
        for d in doc
    ]


def turns_doc(turns: list[SpeakerTurn]) -> list[list[Any]]:
    return [[_t(t.start), _t(t.end), t.speaker] for t in turns]


def turns_from(doc: list[list[Any]]) -> list[SpeakerTurn]:
    return [SpeakerTurn(float(a), float(b), str(s)) for a, b, s in doc]


def attribution_doc(utterances: list[Utterance], roles: list[SpeakerRole]) -> dict[str, Any]:
    return {
        "speakers": [
            {
                "speaker": r.speaker,
                "role": r.role,
                "confidence": r.confidence,
                "seconds": round(r.seconds, 2),
                "source": r.source,
                "similarity": r.similarity,
            }
            for r in roles
        ],
        "utterances": [
            {
                "start": _t(u.start),
                "end": _t(u.end),
                "speaker": u.speaker,
                "text": u.text,
                "confidence": u.confidence,
                "low_confidence": u.low_confidence,
                "flags": list(u.flags),
                "words": [
                    [_t(w.start), _t(w.end), w.text, round(w.probability, 4), w.speaker, w.overlap]
                    for w in u.words
                ],
            }
            for u in utterances
        ],
    }


def utterances_from(doc: dict[str, Any]) -> list[Utterance]:
    return [
        Utterance(
            start=d["start"],
            end=d["end"],
            speaker=d["speaker"],
            text=d["text"],
            words=tuple(AlignedWord(*w) for w in d["words"]),
            confidence=d["confidence"],
            low_confidence=d["low_confidence"],
            flags=tuple(d["flags"]),
        )
        for d in doc["utterances"]
    ]


def roles_from(doc: dict[str, Any]) -> list[SpeakerRole]:
    return [SpeakerRole(**d) for d in doc["speakers"]]
